"""The Python API: what `evalkit run`, `compare`, `check` and `train` do, as functions. The
command line is a thin layer over these; ``import evalkit`` exposes them (evalkit/__init__.py).

``evaluate`` takes the options of `evalkit run` under the same names (``--top-p`` is ``top_p``,
``--task-dir`` is ``task_dir``); runs and baselines are given as a RunResult, a run folder or a
results file. A bad input raises EvalkitError with the one-line message the CLI prints.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from evalkit.comparison import Comparison, check_comparable, compare_runs
from evalkit.config import BackendOptions, JudgeConfig, RunConfig
from evalkit.errors import EvalkitError
from evalkit.gate import CheckOutcome, check_run, make_policy
from evalkit.loggers import available, log_run
from evalkit.metrics.multiple import Correction, check_correction
from evalkit.results import RunResult, load_results
from evalkit.runner import run
from evalkit.train.trainer import fine_tune as train

__all__ = ["check", "compare", "evaluate", "load_results", "run_config", "train"]

RunLike = RunResult | Path | str


def run_config(
    model: str | None = None,
    *,
    tasks: str | Sequence[str] = (),
    suite: str | None = None,
    backend: str = "hf",
    n: int | None = None,
    temperature: float | None = None,
    top_p: float | None = None,
    top_k: int | None = None,
    max_tokens: int | None = None,
    stop: str | Sequence[str] = (),
    limit: int | float | None = None,
    prompt_style: str | None = None,
    system_prompt: str | None = None,
    no_system_prompt: bool = False,
    no_chat_template: bool = False,
    num_fewshot: int | None = None,
    dtype: str = "auto",
    revision: str | None = None,
    trust_remote_code: bool = False,
    seed: int = 1234,
    data_dir: Path | str | None = None,
    output_dir: Path | str = Path("results"),
    run_id: str | None = None,
    batch_size: int | None = None,
    device: str = "auto",
    task_dir: Sequence[Path | str] = (),
    override_tasks: bool = False,
    reward_model: str | None = None,
    equivalence: str | None = None,
    cache_dir: Path | str | None = None,
    no_cache: bool = False,
    base_url: str | None = None,
    api_key_env: str | None = None,
    api: str = "chat",
    concurrency: int = 8,
    request_timeout: float = 600.0,
    max_retries: int = 5,
    tensor_parallel_size: int = 1,
    data_parallel_size: int = 1,
    gpu_memory_utilization: float = 0.9,
    max_model_len: int | None = None,
    judge: str | None = None,
    judge_backend: str = "hf",
    judge_base_url: str | None = None,
    judge_api_key_env: str | None = None,
    judge_rubric: Sequence[str] = (),
    judge_max_tokens: int | None = None,
) -> RunConfig:
    """The RunConfig for these `evalkit run` options (see `evalkit run --help`)."""
    sampling = {"n": n, "temperature": temperature, "top_p": top_p, "top_k": top_k, "max_tokens": max_tokens}
    overrides: dict[str, Any] = {k: v for k, v in sampling.items() if v is not None}
    if stop:
        overrides["stop"] = (stop,) if isinstance(stop, str) else tuple(stop)
    names = tasks.split(",") if isinstance(tasks, str) else tasks
    return RunConfig(
        model=model,
        tasks=tuple(t.strip() for t in names if t.strip()),
        suite=suite,
        backend=backend,
        sampling_overrides=overrides,
        limit=limit,
        seed=seed,
        data_dir=Path(data_dir) if data_dir is not None else None,
        output_dir=Path(output_dir),
        run_id=run_id,
        batch_size=batch_size,
        device=device,
        use_cache=not no_cache,
        cache_dir=Path(cache_dir) if cache_dir is not None else None,
        task_dirs=tuple(Path(d) for d in task_dir),
        prompt_style=prompt_style,
        system_prompt=system_prompt,
        no_system_prompt=no_system_prompt,
        chat_template=not no_chat_template,
        num_fewshot=num_fewshot,
        dtype=dtype,
        revision=revision,
        trust_remote_code=trust_remote_code,
        override_tasks=override_tasks,
        backend_options=BackendOptions(
            base_url=base_url,
            api_key_env=api_key_env,
            api=api,
            concurrency=concurrency,
            request_timeout=request_timeout,
            max_retries=max_retries,
            tensor_parallel_size=tensor_parallel_size,
            data_parallel_size=data_parallel_size,
            gpu_memory_utilization=gpu_memory_utilization,
            max_model_len=max_model_len,
        ),
        judges=JudgeConfig(
            reward_model=reward_model,
            equivalence=equivalence,
            model=judge,
            backend=judge_backend,
            options=BackendOptions(base_url=judge_base_url, api_key_env=judge_api_key_env),
            rubrics=tuple(judge_rubric),
            max_tokens=judge_max_tokens,
        ),
    )


def evaluate(
    model: str | None = None,
    tasks: str | Sequence[str] = (),
    suite: str | None = None,
    *,
    quiet: bool = False,
    report_to: Sequence[str] = (),
    **options: Any,
) -> RunResult:
    """Run tasks on a model, as `evalkit run` does, and return the result (also written to
    ``output_dir/<run_id>/``). ``options``: those of :func:`run_config`; ``quiet``: no progress bar;
    ``report_to``: also log the metrics to ``wandb`` or ``tensorboard`` (evalkit.loggers)."""
    targets = available(report_to)
    result = run(run_config(model, tasks=tasks, suite=suite, **options), progress=not quiet)
    log_run(result, targets)
    return result


def _loaded(run_or_path: RunLike) -> RunResult:
    return run_or_path if isinstance(run_or_path, RunResult) else load_results(run_or_path)


def compare(
    run_a: RunLike,
    run_b: RunLike,
    *more: RunLike,
    confidence: float = 0.95,
    bootstrap_seed: int = 0,
    correction: Correction = "holm",
    allow_mismatch: bool = False,
) -> Comparison:
    """Every task and metric the runs share, against the first: values, deltas and
    paired-bootstrap confidence intervals over the documents both runs scored, and verdicts
    (better, worse, no significant difference) corrected over the metrics compared
    (``correction``: holm, bh or none). Runs that measured different things on a task (other
    documents, sampling or prompt) raise ComparisonMismatch unless ``allow_mismatch``; runs with
    no task in common raise EvalkitError."""
    check_correction(correction)
    if not 0.5 <= confidence < 1:
        raise EvalkitError(f"confidence must be in [0.5, 1), got {confidence}")
    runs = [_loaded(r) for r in (run_a, run_b, *more)]
    comparable = check_comparable(runs, allow_mismatch)
    rows = compare_runs(runs, confidence, bootstrap_seed, correction)
    return Comparison(runs, rows, confidence, correction, comparable)


def check(
    run_result: RunLike,
    baseline: RunLike,
    *,
    policy: Path | str | None = None,
    max_drop: float | None = None,
    max_relative_drop: float | None = None,
    metric: Sequence[str] = (),
    require_significance: bool = False,
    correction: Correction | None = None,
    allow_mismatch: bool = False,
) -> CheckOutcome:
    """Gate a run against a baseline, as `evalkit check` does: ``outcome.passed`` is False when a
    gated metric moved in its worse direction beyond its tolerance, or went missing. Runs that
    measured different things, or share no task, raise EvalkitError as in :func:`compare`;
    ``correction`` (default: the policy's, else holm) applies with ``require_significance``."""
    policy_file = Path(policy) if policy else None
    rules = make_policy(policy_file, max_drop, max_relative_drop, tuple(metric), require_significance, correction)
    current, base = _loaded(run_result), _loaded(baseline)
    comparable = check_comparable([base, current], allow_mismatch)
    return CheckOutcome(current, base, check_run(current, base, rules), comparable, rules)


def report_runs(runs: Sequence[RunLike]) -> list[RunResult]:
    """The runs of a report, each with its own run id."""
    loaded = [_loaded(r) for r in runs]
    names = [r.run_id for r in loaded]
    if len(set(names)) < len(names):
        raise EvalkitError(f"two runs share a run id ({', '.join(names)}); give each run its own --run-id")
    return loaded
