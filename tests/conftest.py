"""Shared fixtures. Tests never reach a hub: lookups fail fast instead of retrying."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests import cli_processes

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Without a GPU, Triton kernels (tests/test_loss_kernels.py) run through Triton's CPU interpreter.
# Triton reads this when it is first imported, so it is set before any test imports it.
if "TRITON_INTERPRET" not in os.environ and importlib.util.find_spec("triton") is not None:
    import torch

    if not torch.cuda.is_available():
        os.environ["TRITON_INTERPRET"] = "1"

pytest_plugins = ["ci_skips"]  # with CI set, a skip fails (tests/ci_skips.py)

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"


@dataclass
class CliResult:
    returncode: int
    stdout: str
    stderr: str


def run_cli(
    *args: str, cwd: Path | None = None, timeout: float = 600, env: dict | None = None, fresh: bool = False
) -> CliResult:
    """`evalkit ARGS` in a process of its own, as a user runs it: forked from a server that has
    imported the heavy libraries once (tests/cli_processes.py), or with ``fresh`` (or an
    environment the server does not have) a new `python -m evalkit` subprocess. In this process
    when EVALKIT_TEST_CLI_IN_PROCESS is set, so that benchmarks/mutation.py's mutants, which live
    only in this process, are what the command runs."""
    if os.environ.get("EVALKIT_TEST_CLI_IN_PROCESS") and cwd is None and not env:
        return _run_cli_in_process(args)
    if not fresh and cli_processes.can_fork(env):
        return CliResult(*cli_processes.run_forked(args, cwd, timeout))
    proc = subprocess.run(
        [sys.executable, "-m", "evalkit", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        env={**os.environ, **(env or {})},
    )
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


def _run_cli_in_process(args: tuple[str, ...]) -> CliResult:
    import contextlib
    import io

    from evalkit.cli import main

    out, err, argv, code = io.StringIO(), io.StringIO(), sys.argv, 0
    sys.argv = ["evalkit", *args]
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        sys.argv = argv
    return CliResult(code, out.getvalue(), err.getvalue())


@pytest.fixture
def cli():
    return run_cli


def run_and_load(root: Path, name: str, *args: str, cache: str | None = None) -> tuple[dict, list[dict]]:
    """`evalkit run ARGS` into ROOT/out/NAME with the cache ROOT/(CACHE or NAME): its results and samples."""
    out = root / "out"
    result = run_cli(
        "run", *args, "--output-dir", str(out), "--run-id", name, "--cache-dir", str(root / (cache or name))
    )
    assert result.returncode == 0, result.stderr
    run_dir = out / name
    results = json.loads((run_dir / "results.json").read_text())
    samples = [json.loads(line) for line in (run_dir / "samples.jsonl").read_text().splitlines()]
    return results, samples


# The smoke suite, small: 3 documents of each task, 2 samples of at most 32 tokens.
SMOKE_ARGS = ("--suite", "smoke", "--limit", "3", "--n", "2", "--max-tokens", "32", "--quiet")


@dataclass
class FinishedRun:
    root: Path  # the session's folder of smoke runs: runs in ROOT/out/NAME, caches in ROOT/NAME
    name: str
    results: dict
    samples: list[dict]

    @property
    def run_dir(self) -> Path:
        return self.root / "out" / self.name

    @property
    def cache_dir(self) -> Path:
        return self.root / self.name


@pytest.fixture(scope="session")
def smoke_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("smoke-runs")


@pytest.fixture(scope="session")
def smoke_run(smoke_root) -> FinishedRun:
    """`evalkit run` of the small smoke suite with seed 7 on the embedded model, once per session."""
    return FinishedRun(smoke_root, "first", *run_and_load(smoke_root, "first", *SMOKE_ARGS, "--seed", "7"))


@pytest.fixture(scope="session")
def smoke_run_seed_8(smoke_root) -> FinishedRun:
    """The same run with seed 8 (its own cache), once per session."""
    return FinishedRun(smoke_root, "other-seed", *run_and_load(smoke_root, "other-seed", *SMOKE_ARGS, "--seed", "8"))


@pytest.fixture(scope="session")
def evalkit_server():
    """`evalkit serve` of the embedded model on 127.0.0.1, shared by the tests that talk to it."""
    from tests.http_servers import EvalkitServer

    server = EvalkitServer()
    yield server
    server.close()


@pytest.fixture(scope="session")
def embedded_folder() -> Path:
    from evalkit.embedded import default_model_dir

    return default_model_dir()


@pytest.fixture(scope="session")
def embedded_model(embedded_folder):
    """The embedded model in float32 on the CPU, loaded once; tests only read it."""
    import torch
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(embedded_folder, dtype=torch.float32).eval()


@pytest.fixture(scope="session")
def embedded_tokenizer(embedded_folder):
    """The embedded model's tokenizer as transformers loads it, once; tests only read it."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(embedded_folder)


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"benchmark data not found at {SHARED_DATA} (../shared/data beside the checkout)")
    return SHARED_DATA


@dataclass
class BrowserView:
    dom: str
    console: list[str]  # every console message the page produced (errors included)
    screenshot: Path


def open_in_chromium(page: Path, out_dir: Path) -> BrowserView:
    """Load a local page in headless Chromium: its DOM after the load event, its console, a screenshot."""
    import shutil

    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("Chromium is not installed (Debian package `chromium`; .ci/run installs it)")
    flags = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr", "--v=0"]
    flags.append(f"--user-data-dir={out_dir / 'chromium-profile'}")
    dom = subprocess.run([*flags, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120)
    shot = out_dir / "screenshot.png"
    snap = subprocess.run(
        [*flags, "--window-size=1280,2000", f"--screenshot={shot}", page.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert dom.returncode == 0 and snap.returncode == 0, dom.stderr[-2000:] + snap.stderr[-2000:]
    console = [line for line in (dom.stderr + snap.stderr).splitlines() if ":CONSOLE" in line]
    return BrowserView(dom.stdout, console, shot)


def assert_not_blank(png: Path) -> None:
    """A screenshot with real content: many non-white pixels and more than a couple of colours."""
    import numpy as np
    from PIL import Image

    pixels = np.asarray(Image.open(png).convert("L"))
    inked = float((pixels < 200).mean())
    assert inked > 0.01, f"screenshot {png} is (almost) blank: {inked:.2%} dark pixels"
    assert len(np.unique(pixels)) > 20
