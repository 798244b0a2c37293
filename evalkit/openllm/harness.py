"""Open LLM leaderboard tasks through lm-evaluation-harness (``lm_eval.simple_evaluate``).

evalkit does not re-implement log-likelihood scoring: it hands lm-eval the model the user chose
(``lm_eval_model``) and lm-eval's own task definitions. Online, the tasks read the hub as lm-eval
ships them. With --data-dir, the same task configs read evalkit's local copies (local_data.py)
through lm-eval's ``custom_dataset`` hook; only the dataset and, where the local copy lacks the
train split, the split few-shot examples come from, change. lm-eval's results (and its per-document
samples) become evalkit's results.json entry and documents.jsonl rows.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from importlib import metadata
from importlib.util import find_spec
from pathlib import Path
from typing import Any

from evalkit.backends import Backend, LogLikelihoodBackend
from evalkit.config import RunConfig
from evalkit.errors import ConfigError, DataError, DataUnavailable, ModelError
from evalkit.openllm.local_data import READERS, mmlu_subjects
from evalkit.openllm.quiet import quiet_lm_eval
from evalkit.resources import hf_offline

_OPTION_FIELDS = {"task", "num_fewshot", "local", "subjects", "metrics"}

# What the local copies lack, by local format: the splits lm-eval's configs name that are not
# there, and the split few-shot examples are then drawn from (lm-eval leaves the evaluated
# document out of its own context when both are the same split).
SPLITS: dict[str, dict[str, Any]] = {
    "arc": {"training_split": None, "validation_split": None, "test_split": "test", "fewshot_split": "test"},
    "winogrande": {"training_split": None, "validation_split": "validation", "fewshot_split": "validation"},
    "truthfulqa": {},
    "gsm8k": {"training_split": None, "test_split": "test", "fewshot_split": "test"},
    "mmlu": {},
}


@dataclass(frozen=True)
class LmEvalOptions:
    """A task YAML's ``lm_eval`` mapping."""

    task: str  # lm-eval's task or group name (mmlu is a group of 57 subject tasks)
    num_fewshot: int
    local: str | None = None  # local format (local_data.READERS), read under --data-dir
    subjects: tuple[str, ...] = ()  # MMLU only: these subjects instead of all 57
    metrics: tuple[str, ...] = ()  # lm-eval metric names to keep (default: all it reports)

    @classmethod
    def from_dict(cls, raw: Any, where: str) -> LmEvalOptions:
        if not isinstance(raw, dict):
            raise ConfigError(f"{where}: 'lm_eval' must be a mapping with task and num_fewshot")
        unknown = sorted(set(raw) - _OPTION_FIELDS)
        if unknown:
            raise ConfigError(f"{where}: unknown lm_eval field(s) {unknown}; known: {sorted(_OPTION_FIELDS)}")
        task, shots = raw.get("task"), raw.get("num_fewshot")
        if not isinstance(task, str) or not task:
            raise ConfigError(f"{where}: lm_eval.task must be lm-eval's task name")
        if isinstance(shots, bool) or not isinstance(shots, int) or shots < 0:
            raise ConfigError(f"{where}: lm_eval.num_fewshot must be an integer >= 0")
        local = raw.get("local")
        if local is not None and local not in READERS:
            raise ConfigError(f"{where}: lm_eval.local '{local}' is not one of {sorted(READERS)}")
        subjects = raw.get("subjects") or []
        if subjects and local != "mmlu":
            raise ConfigError(f"{where}: lm_eval.subjects applies to MMLU (local: mmlu) only")
        for key, value in (("subjects", subjects), ("metrics", raw.get("metrics") or [])):
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ConfigError(f"{where}: lm_eval.{key} must be a list of names")
        return cls(task, shots, local, tuple(subjects), tuple(raw.get("metrics") or ()))


def lm_eval_model(backend: Backend, batch_size: int | None, seed: int) -> tuple[str, dict[str, Any]]:
    """lm-eval's model name and arguments for the run's backend: its model, device and dtype
    (see LogLikelihoodBackend.lm_eval_model in evalkit/backends/hf.py and vllm.py)."""
    if not isinstance(backend, LogLikelihoodBackend):
        raise ConfigError(
            f"backend '{backend.name}' cannot run lm-eval tasks: use --backend hf or vllm (log-likelihoods need "
            "the model's logits; a chat server does not return them)"
        )
    return backend.lm_eval_model(batch_size, seed)


def check_lm_eval_runtime(config: RunConfig) -> None:
    """What lm-eval's vLLM model needs, checked before anything loads (lm-eval 0.4.13,
    models/vllm_causallms.py): vLLM itself (imported by the module, :13), and Ray when
    data_parallel_size > 1 (:127-130). lm-eval then builds no engine of its own (:153-163) but
    runs each data-parallel engine as a Ray task that builds a new engine for every call
    (:402-454): one call per kind of request (log-likelihood, generation) of each
    simple_evaluate, i.e. of each evalkit task, after which it shuts Ray down."""
    if config.backend != "vllm":
        return
    if find_spec("vllm") is None:
        raise ModelError("lm-eval tasks with --backend vllm need vLLM on a CUDA machine: pip install 'evalkit[vllm]'")
    if config.backend_options.data_parallel_size > 1 and find_spec("ray") is None:
        raise ConfigError(
            "lm-eval tasks with --data-parallel-size > 1 need Ray (lm-eval starts its data-parallel vLLM engines "
            "as Ray tasks): pip install ray, or run these tasks with --data-parallel-size 1 "
            "(--tensor-parallel-size still applies); evalkit's own tasks need no Ray"
        )


@dataclass(frozen=True)
class LmEvalPlan:
    """What to hand simple_evaluate for one evalkit task: lm-eval task names (hub) or full
    task config dicts (local data), and the number of few-shot examples."""

    tasks: list[Any]
    num_fewshot: int | None
    source: str  # "hub" or the local data folder


def plan(task: str, opts: LmEvalOptions, data_dir: Path | None) -> LmEvalPlan:
    """Hub task names online (no --data-dir), local task configs with --data-dir; DataUnavailable
    offline without local data. Local files are read (and checked) here, before any model loads."""
    if data_dir is not None and opts.local:
        return LmEvalPlan(local_task_configs(opts, Path(data_dir)), None, str(data_dir))
    if not hf_offline("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        names = [f"mmlu_{s}" for s in opts.subjects] if opts.subjects else [opts.task]
        return LmEvalPlan(names, opts.num_fewshot, "hub")
    wanted = "--data-dir DIR with its local copy" if opts.local else "network access to the hub (no local copy)"
    raise DataUnavailable(f"task {task}: no data available offline; it needs {wanted}")


@functools.lru_cache(maxsize=1)
def _task_manager():  # noqa: ANN202 - lm_eval.tasks.TaskManager; indexing lm-eval's YAML tree takes seconds
    from lm_eval.tasks import TaskManager  # heavy: only for lm-eval tasks

    return TaskManager()


def lm_eval_task_config(name: str) -> dict[str, Any]:
    """lm-eval's own config of a task, includes and !function references resolved."""
    try:
        from lm_eval.tasks._yaml_loader import load_yaml  # heavy, as above
    except ImportError:
        raise ConfigError(
            f"local data for lm-eval tasks needs lm-eval >= 0.4.13 (installed: {lm_eval_version()}); "
            "pip install 'evalkit[openllm]'"
        ) from None

    entry = _task_manager().task_index.get(name)
    if entry is None or entry.yaml_path is None:
        raise ConfigError(f"lm-eval {lm_eval_version()} has no task '{name}'")
    config = dict(load_yaml(entry.yaml_path, resolve_func=True))
    for key in ("tag", "group", "task_list", "include"):
        config.pop(key, None)
    return config


def _dataset(splits: dict[str, list[dict[str, Any]]], **_: Any):  # noqa: ANN202 - datasets.DatasetDict
    import datasets  # heavy: only for local copies of lm-eval's data

    return datasets.DatasetDict({name: datasets.Dataset.from_list(rows) for name, rows in splits.items()})


def local_task_configs(opts: LmEvalOptions, data_dir: Path) -> list[dict[str, Any]]:
    """lm-eval's task configs pointed at the local copy under data_dir (one per MMLU subject)."""
    reader = READERS[opts.local]  # type: ignore[index]
    if opts.local == "mmlu":
        known = mmlu_subjects(data_dir)
        missing = sorted(set(opts.subjects) - set(known))
        if missing:
            raise DataError(f"MMLU subject(s) {missing} not found under {data_dir}/mmlu/test")
        parts = [(f"mmlu_{s}", {"subject": s}) for s in (opts.subjects or known)]
    else:
        parts = [(opts.task, {})]
    configs = []
    for name, kwargs in parts:
        config = lm_eval_task_config(name)
        config.update(SPLITS[opts.local])  # type: ignore[index]
        config.update(
            dataset_path=str(data_dir),
            dataset_name=None,
            dataset_kwargs=None,
            custom_dataset=functools.partial(_dataset, reader(data_dir, **kwargs)),
            num_fewshot=opts.num_fewshot,
        )
        configs.append(config)
    return configs


@functools.lru_cache(maxsize=1)
def _load_lm(name: str, frozen_args: tuple[tuple[str, Any], ...]):  # noqa: ANN202 - lm_eval LM
    """One model for all of a run's lm-eval tasks (not one load per task)."""
    from lm_eval.api.registry import get_model  # heavy, as above

    return get_model(name).create_from_arg_obj(dict(frozen_args))


class _DropCustomDatasetNotice(logging.Filter):
    """lm-eval logs a notice about --metadata for every task read through custom_dataset (57
    times for MMLU); it concerns lm-eval's own CLI, not evalkit's users."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Custom kwargs can be passed" not in record.getMessage()


def evaluate(
    plan_: LmEvalPlan,
    model: tuple[str, dict[str, Any]],
    limit: int | float | None,
    seed: int,
    system_instruction: str | None = None,
) -> dict[str, Any]:
    """lm_eval.simple_evaluate on the plan with the model (lm_eval_model), limit (a number of
    documents, or below 1 a share of them), seed and system instruction (--system-prompt); its
    raw output."""
    import lm_eval  # heavy: only for lm-eval tasks

    task_logger = logging.getLogger("lm_eval.api.task")
    if not any(isinstance(f, _DropCustomDatasetNotice) for f in task_logger.filters):
        task_logger.addFilter(_DropCustomDatasetNotice())

    name, args = model
    try:
        with quiet_lm_eval():  # transformers' bars while lm-eval loads the model
            lm = _load_lm(name, tuple(sorted(args.items())))
    except ImportError as exc:  # lm-eval's vllm model without vLLM, or data parallel without Ray
        raise ModelError(
            f"lm-eval's {name} model cannot be loaded here: {_first_line(exc)} (vLLM: pip install 'evalkit[vllm]'; "
            "Ray for --data-parallel-size > 1: pip install ray)"
        ) from None
    except (OSError, ValueError) as exc:
        raise ModelError(f"lm-eval cannot load model {args.get('pretrained')}: {_first_line(exc)}") from None
    try:
        with quiet_lm_eval():  # its own bars and git lookup stay out of evalkit's output
            return lm_eval.simple_evaluate(
                model=lm,
                tasks=plan_.tasks,
                num_fewshot=plan_.num_fewshot,
                limit=limit,
                system_instruction=system_instruction,
                log_samples=True,
                task_manager=_task_manager(),
                random_seed=seed,
                numpy_random_seed=seed,
                torch_random_seed=seed,
                fewshot_random_seed=seed,
            )
    except ImportError as exc:  # lm-eval imports Ray only when its data-parallel engines start
        raise ModelError(f"lm-eval's {name} model cannot run here: {_first_line(exc)}") from None
    except Exception as exc:  # lm-eval reaching the hub: connection, auth, missing dataset
        if plan_.source != "hub":
            raise
        raise DataError(f"lm-eval cannot load {plan_.tasks} from the hub: {type(exc).__name__}: {exc}") from None


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def lm_eval_version() -> str:
    return metadata.version("lm_eval")
