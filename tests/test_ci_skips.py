"""With CI set, a skip for missing data, browser or root fails the run; locally it stays a skip."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

_SKIPPING = """
import pytest
pytest.importorskip("a_package_that_is_not_installed", reason="needs a_package")

def test_never_collected():
    pass
"""
_TESTS = """
import pytest

def test_data():
    pytest.skip("benchmark data not found at /nowhere")

@pytest.mark.skipif(True, reason="uid isolation needs root")
def test_root():
    pass

def test_gpu():
    pytest.skip("needs a CUDA GPU")

def test_passes():
    assert 1 + 1 == 2
"""


def _pytest(folder: Path, ci: str | None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    if ci is not None:
        env["CI"] = ci
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).parent), env.get("PYTHONPATH", "")])
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rA", "-p", "ci_skips", "-p", "no:cacheprovider", str(folder)],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "test_skips.py").write_text(_TESTS)
    return tmp_path


def test_locally_skips_stay_skips(folder):
    (folder / "test_import_skip.py").write_text(_SKIPPING)
    proc = _pytest(folder, None)
    assert proc.returncode == 0, proc.stdout
    assert "1 passed, 4 skipped" in proc.stdout


def test_in_ci_every_skip_but_hardware_fails_naming_what_is_missing(folder):
    proc = _pytest(folder, "true")
    assert proc.returncode == 1, proc.stdout
    # a skip in the call fails the test; a skip mark (set-up) is an error: both fail the run
    assert "1 failed, 1 passed, 1 skipped, 1 error" in proc.stdout, proc.stdout
    for missing in ("benchmark data not found at /nowhere", "uid isolation needs root"):
        assert f"CI is set, so this test may not skip: {missing}" in proc.stdout


def test_in_ci_a_module_skipped_at_import_is_a_collection_error(folder):
    (folder / "test_import_skip.py").write_text(_SKIPPING)
    proc = _pytest(folder, "1")
    assert proc.returncode != 0
    assert "CI is set, so this test may not skip: needs a_package" in proc.stdout


def test_ci_false_is_local(folder):
    assert _pytest(folder, "false").returncode == 0
