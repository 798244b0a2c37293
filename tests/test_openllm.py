"""Open LLM tasks through lm-eval: evalkit's numbers equal lm_eval.simple_evaluate called directly
on the same local data and settings; offline without data, suite tasks are skipped."""

from __future__ import annotations

import csv
import functools
import json
from pathlib import Path

import pytest

from evalkit.config import BackendOptions, RunConfig
from evalkit.errors import ConfigError, DataUnavailable

SEED = 1234
LIMIT = 2  # documents per task (per subject for MMLU), on both sides
SUBJECTS = ("anatomy", "college_physics")


def _hub_schema(data: Path) -> dict[str, dict[str, list[dict]]]:
    """The local files in the hub datasets' schema, written here independently of evalkit."""
    arc = []
    for line in (data / "arc_challenge/ARC-Challenge-Test.jsonl").read_text().splitlines():
        r = json.loads(line)
        labels = [c["label"] for c in r["question"]["choices"]]
        texts = [c["text"] for c in r["question"]["choices"]]
        arc.append(
            {
                "id": r["id"],
                "question": r["question"]["stem"],
                "choices": {"text": texts, "label": labels},
                "answerKey": r["answerKey"],
            }
        )
    wino = [json.loads(line) for line in (data / "winogrande/dev.jsonl").read_text().splitlines()]
    wino = [
        {"sentence": r["sentence"], "option1": r["option1"], "option2": r["option2"], "answer": r["answer"]}
        for r in wino
    ]
    tqa = [
        {
            "question": r["question"],
            "mc1_targets": {"choices": list(r["mc1_targets"].keys()), "labels": list(r["mc1_targets"].values())},
            "mc2_targets": {"choices": list(r["mc2_targets"].keys()), "labels": list(r["mc2_targets"].values())},
        }
        for r in json.loads((data / "truthfulqa/mc_task_v0.json").read_text())
    ]
    out = {"arc_challenge": {"test": arc}, "winogrande": {"validation": wino}, "truthfulqa_mc2": {"validation": tqa}}
    for subject in SUBJECTS:
        splits = {}
        for split in ("test", "dev"):
            with open(data / f"mmlu/{split}/{subject}_{split}.csv", encoding="utf-8", newline="") as f:
                splits[split] = [
                    {"question": q, "subject": subject, "choices": [a, b, c, d], "answer": "ABCD".index(ans)}
                    for q, a, b, c, d, ans in csv.reader(f)
                ]
        out[f"mmlu_{subject}"] = splits
    return out


def _direct_configs(data: Path, task_manager) -> list[dict]:
    import datasets
    from lm_eval.tasks._yaml_loader import load_yaml

    index = task_manager.task_index
    shots = {"arc_challenge": 25, "winogrande": 5, "truthfulqa_mc2": 0}
    # Splits the local copies lack: few-shot examples come from the evaluated split.
    splits = {
        "arc_challenge": {
            "training_split": None,
            "validation_split": None,
            "test_split": "test",
            "fewshot_split": "test",
        },
        "winogrande": {"training_split": None, "fewshot_split": "validation"},
    }
    configs = []
    for name, rows in _hub_schema(data).items():
        config = {
            k: v for k, v in load_yaml(index[name].yaml_path, resolve_func=True).items() if k not in ("tag", "group")
        }
        config.update(splits.get(name, {}))
        dataset = datasets.DatasetDict({s: datasets.Dataset.from_list(r) for s, r in rows.items()})
        config.update(
            custom_dataset=functools.partial(lambda d, **_: d, dataset),
            dataset_kwargs=None,
            num_fewshot=shots.get(name, 5),
        )
        configs.append(config)
    return configs


@pytest.fixture(scope="module")
def lm_eval_direct():
    """lm-eval's own task index and HF model, built once for this file's direct calls (each
    TaskManager() indexes lm-eval's YAML tree for seconds; each model="hf" string loads the model
    again). The model is lm-eval's HFLM with the arguments a user would pass as model_args."""
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    from evalkit.models import resolve_model

    lm = HFLM(pretrained=str(resolve_model(None).source), device="cpu", dtype="float32", batch_size=4)
    return TaskManager(), lm


def test_openllm_tasks_equal_lm_eval_called_directly(shared_data, tmp_path, lm_eval_direct):
    import lm_eval

    from evalkit.runner import run

    task_dir = tmp_path / "tasks"
    task_dir.mkdir()
    (task_dir / "mmlu_two.yaml").write_text(
        "name: mmlu_two\nkind: lm_eval\nlm_eval:\n  task: mmlu\n  num_fewshot: 5\n  local: mmlu\n"
        f"  subjects: [{', '.join(SUBJECTS)}]\n"
    )
    config = RunConfig(
        model=None,
        tasks=("arc_challenge", "winogrande", "truthfulqa_mc2", "mmlu_two"),
        limit=LIMIT,
        seed=SEED,
        data_dir=shared_data,
        output_dir=tmp_path / "runs",
        run_id="openllm",
        device="cpu",
        task_dirs=(task_dir,),
        use_cache=False,
    )
    result = run(config, progress=False)
    run_dir, results = result.path, result.to_json()

    # One simple_evaluate per evalkit task, as evalkit calls it: lm-eval batches the requests of one
    # call together, and float32 log-likelihoods (TruthfulQA's MC2 is continuous) depend on the padding.
    direct: dict = {}
    task_manager, lm = lm_eval_direct
    configs = {c["task"]: c for c in _direct_configs(shared_data, task_manager)}
    groups = [["arc_challenge"], ["winogrande"], ["truthfulqa_mc2"], [f"mmlu_{s}" for s in SUBJECTS]]
    for group in groups:
        direct |= lm_eval.simple_evaluate(
            model=lm,
            tasks=[configs[name] for name in group],
            task_manager=task_manager,
            limit=LIMIT,
            random_seed=SEED,
            numpy_random_seed=SEED,
            torch_random_seed=SEED,
            fewshot_random_seed=SEED,
        )["results"]

    tasks = results["tasks"]
    for name in ("arc_challenge", "winogrande", "truthfulqa_mc2"):
        assert tasks[name]["n_docs"] == LIMIT
        assert tasks[name]["metrics"]["acc"] == pytest.approx(100 * direct[name]["acc,none"], rel=1e-12, abs=1e-12)
    assert tasks["arc_challenge"]["metrics"]["acc_norm"] == pytest.approx(
        100 * direct["arc_challenge"]["acc_norm,none"], abs=1e-12
    )
    mmlu = sum(direct[f"mmlu_{s}"]["acc,none"] for s in SUBJECTS) / len(SUBJECTS)  # equal sizes (LIMIT each)
    assert tasks["mmlu_two"]["metrics"]["acc"] == pytest.approx(100 * mmlu, abs=1e-12)
    assert tasks["mmlu_two"]["n_docs"] == LIMIT * len(SUBJECTS)
    assert results["versions"]["lm_eval"] == lm_eval.__version__
    assert tasks["arc_challenge"]["lm_eval"]["num_fewshot"] == 25

    # documents.jsonl: one row per document whose values average to the task's metric
    rows = [json.loads(line) for line in (run_dir / "documents.jsonl").read_text().splitlines()]
    for name, entry in tasks.items():
        values = [r["metrics"]["acc"] for r in rows if r["task"] == name]
        assert len(values) == entry["n_docs"]
        assert sum(values) / len(values) == pytest.approx(entry["metrics"]["acc"], abs=1e-9)
    assert len({r["doc_id"] for r in rows}) == len(rows)


def test_gsm8k_generation_equals_lm_eval_called_directly(shared_data, tmp_path, lm_eval_direct):
    """The one generating task: 5-shot greedy GSM8K through evalkit equals lm-eval on the same data."""
    import datasets
    import lm_eval
    from lm_eval.tasks._yaml_loader import load_yaml

    from evalkit.runner import run

    task_manager, lm = lm_eval_direct
    limit = 2
    config = RunConfig(
        model=None, tasks=("gsm8k_openllm",), limit=limit, seed=SEED, data_dir=shared_data,
        output_dir=tmp_path, run_id="gsm8k", device="cpu", use_cache=False,
    )  # fmt: skip
    results = run(config, progress=False).to_json()
    rows = [json.loads(line) for line in (shared_data / "gsm8k/test.jsonl").read_text().splitlines()]
    task = load_yaml(task_manager.task_index["gsm8k"].yaml_path, resolve_func=True)
    task = {k: v for k, v in task.items() if k not in ("tag", "group")}
    dataset = datasets.DatasetDict({"test": datasets.Dataset.from_list(rows)})
    task.update(
        training_split=None, test_split="test", fewshot_split="test", num_fewshot=5, dataset_kwargs=None,
        custom_dataset=functools.partial(lambda d, **_: d, dataset),
    )  # fmt: skip
    direct = lm_eval.simple_evaluate(
        model=lm, task_manager=task_manager, tasks=[task], limit=limit, log_samples=True,
        random_seed=SEED, numpy_random_seed=SEED, torch_random_seed=SEED, fewshot_random_seed=SEED,
    )  # fmt: skip
    # The same generations, not only the same (possibly all-zero) scores.
    logged = [s for s in direct["samples"]["gsm8k"] if s["filter"] == "strict-match"]  # one row per filter
    generations = [s["resps"][0][0] for s in sorted(logged, key=lambda s: s["doc_id"])]
    ours = [json.loads(line) for line in (tmp_path / "gsm8k" / "samples.jsonl").read_text().splitlines()]
    assert [r["completion"] for r in ours] == generations and all(g.strip() for g in generations)
    direct = direct["results"]["gsm8k"]
    metrics = results["tasks"]["gsm8k_openllm"]["metrics"]
    for key in ("strict-match", "flexible-extract"):
        assert metrics[f"exact_match_{key}"] == pytest.approx(100 * direct[f"exact_match,{key}"], abs=1e-12)
    assert results["tasks"]["gsm8k_openllm"]["n_docs"] == limit


def test_offline_without_data_skips_suite_tasks_and_names_what_is_needed():
    from evalkit.runner import prepare

    skipped: dict[str, str] = {}
    with pytest.raises(DataUnavailable):
        prepare(RunConfig(model=None, tasks=(), suite="openllm"), skipped)
    assert set(skipped) == {"arc_challenge", "hellaswag", "mmlu", "truthfulqa_mc2", "winogrande", "gsm8k_openllm"}
    assert "--data-dir" in skipped["mmlu"] and "hub" in skipped["hellaswag"]


def test_local_data_in_the_hub_schema(shared_data):
    from evalkit.openllm.local_data import READERS, mmlu_subjects

    assert len(mmlu_subjects(shared_data)) == 57
    assert sum(len(READERS["mmlu"](shared_data, subject=s)["test"]) for s in mmlu_subjects(shared_data)) == 14042
    arc = READERS["arc"](shared_data)["test"]
    assert len(arc) == 1172 and all(r["answerKey"] in r["choices"]["label"] for r in arc)
    tqa = READERS["truthfulqa"](shared_data)["validation"]
    assert tqa[0]["question"].startswith("What is the smallest country") and tqa[0]["mc2_targets"]["labels"][0] == 1


def test_backends_lm_eval_cannot_run_fail_clearly():
    from evalkit.backends import make_backend
    from evalkit.backends.hf import HFBackend
    from evalkit.backends.openai import OpenAIBackend
    from evalkit.backends.vllm import VLLMBackend
    from evalkit.errors import EvalkitError
    from evalkit.openllm.harness import lm_eval_model
    from tests.http_servers import ScriptedServer

    with pytest.raises(EvalkitError, match="unknown backend 'nope'"):
        make_backend("nope", None, "cpu", 2, BackendOptions())
    name, args = lm_eval_model(HFBackend(None, device="cpu", batch_size=2), batch_size=2, seed=1234)
    assert name == "hf" and args["dtype"] == "float32" and args["batch_size"] == 2 and Path(args["pretrained"]).is_dir()
    server = ScriptedServer()
    try:
        served = OpenAIBackend(None, BackendOptions(base_url=server.url))
    finally:
        server.close()
    with pytest.raises(ConfigError, match="cannot run lm-eval tasks"):
        lm_eval_model(served, batch_size=2, seed=1234)
    options = BackendOptions(
        tensor_parallel_size=2, data_parallel_size=4, gpu_memory_utilization=0.8, max_model_len=4096
    )
    name, args = lm_eval_model(VLLMBackend(None, options), batch_size=64, seed=3)
    assert name == "vllm" and Path(args["pretrained"]).is_dir()
    assert {k: args[k] for k in ("tensor_parallel_size", "data_parallel_size", "gpu_memory_utilization")} == {
        "tensor_parallel_size": 2, "data_parallel_size": 4, "gpu_memory_utilization": 0.8,
    }  # fmt: skip
    assert args["max_model_len"] == 4096 and args["seed"] == 3


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("kind: lm_eval\nlm_eval: {task: mmlu}\n", "num_fewshot"),
        ("kind: lm_eval\nlm_eval: {task: mmlu, num_fewshot: 5, local: nope}\n", "lm_eval.local 'nope'"),
        ("kind: lm_eval\nlm_eval: {task: arc_challenge, num_fewshot: 5, local: arc, subjects: [x]}\n", "MMLU"),
        ("kind: lm_eval\nprompt: {template: x}\nlm_eval: {task: mmlu, num_fewshot: 5}\n", "unknown field"),
        ("kind: lm_evl\n", "unknown kind"),
        ("kind: perplexity\nperplexity: {last: 0}\ndata: {local: a.json}\n", "perplexity.last"),
    ],
)
def test_malformed_kind_task_files_fail_clearly(tmp_path, body, message):
    from evalkit.tasks import load_task_file

    path = tmp_path / "bad.yaml"
    path.write_text(body)
    with pytest.raises(ConfigError, match=message):
        load_task_file(path)


def test_lm_eval_bars_and_git_noise_do_not_leak(shared_data, tmp_path, monkeypatch, capfd):
    """An lm-eval task run with the progress bar on, outside a git repository: no bar of lm-eval's,
    transformers' or datasets', no ``fatal: not a git repository``, no empty ``samples 0/0`` bar."""
    from evalkit.runner import run

    monkeypatch.chdir(tmp_path)  # lm-eval runs `git describe` here
    config = RunConfig(
        model=None, tasks=("arc_challenge",), limit=2, seed=SEED, data_dir=shared_data,
        output_dir=tmp_path / "runs", run_id="quiet", device="cpu", use_cache=False,
        num_fewshot=0,  # short prompts: this test is about the output, not the score
    )  # fmt: skip
    capfd.readouterr()
    result = run(config, progress=True)
    err = capfd.readouterr().err
    assert set(result.tasks["arc_challenge"].metrics) == {"acc", "acc_norm"}
    assert "fatal:" not in err and "it/s" not in err and "%|" not in err and "0/0" not in err, err[-2000:]
