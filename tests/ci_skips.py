"""CI never skips silently: with ``CI`` set, a test that would skip (missing benchmark data, a
missing browser, not running as root, a missing package) fails instead, naming what is missing.
The one skip CI may take is for hardware it cannot have: a reason that contains ``HARDWARE``.
Locally the skips stay, with their reasons. Loaded by tests/conftest.py."""

from __future__ import annotations

import os

import pytest

HARDWARE = "needs a CUDA GPU"  # put this in a skip reason for tests that need a GPU


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def _failed_skip(report: pytest.TestReport | pytest.CollectReport) -> None:
    if not report.skipped or hasattr(report, "wasxfail"):
        return
    longrepr = report.longrepr
    reason = longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)
    if HARDWARE in reason:
        return
    report.outcome = "failed"
    report.longrepr = f"CI is set, so this test may not skip: {reason.removeprefix('Skipped: ')}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> object:
    outcome = yield
    if in_ci():
        _failed_skip(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> object:
    outcome = yield
    if in_ci():
        _failed_skip(outcome.get_result())
