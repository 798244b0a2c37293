"""The model and prompt controls of `evalkit run` (--dtype, --revision, --trust-remote-code,
--system-prompt, --no-system-prompt, --no-chat-template, --num-fewshot, --limit as a fraction):
checked before anything loads, applied to the prompts, part of the cache keys where they change
samples, recorded in results.json; and the backend kind and precision in the cache key."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Sequence

import jinja2
import pytest
from jinja2.sandbox import ImmutableSandboxedEnvironment

import evalkit
from evalkit.api import run_config
from evalkit.backends import Backend, PromptBatch
from evalkit.backends.hf import HFBackend, render_chat
from evalkit.cache import GenerationCache
from evalkit.config import ChatFormat, ModelOptions, RunConfig, SamplingConfig
from evalkit.errors import ConfigError, EvalkitError
from evalkit.generation import CacheStats, generate_cached
from evalkit.tasks import task_registry
from evalkit.tasks.generate import with_run_options
from evalkit.tasks.generate_spec import render_messages

SMOLLM_DEFAULT = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
CHAT = [{"role": "user", "content": "What is 2+2?"}]

# Validation --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "limit, total, expected",
    [
        (None, 12, None),
        (5, 12, 5),
        (5.0, 12, 5),
        (0.1, 12, 2),
        (0.5, 12, 6),
        (0.01, 12, 1),
        (0.999, 3, 3),
        (20, 12, 20),
    ],
)
def test_limit_is_a_count_or_a_share_rounded_up(limit, total, expected):
    assert RunConfig(model=None, tasks=("t",), limit=limit).documents_limit(total) == expected


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"limit": 0}, "limit must be >= 1"),
        ({"limit": 0.0}, "limit must be >= 1"),
        ({"limit": 1.5}, "limit must be >= 1"),
        ({"limit": -0.5}, "limit must be >= 1"),
        ({"limit": float("nan")}, "limit must be >= 1"),
        ({"limit": True}, "limit must be >= 1"),
        ({"dtype": "float8"}, "dtype must be one of auto, float32, bfloat16, float16"),
        ({"revision": ""}, "revision must be"),
        ({"system_prompt": "  "}, "system prompt must be a non-empty text"),
        ({"system_prompt": "Be brief.", "no_system_prompt": True}, "exclude each other"),
        ({"num_fewshot": -1}, "num_fewshot must be >= 0"),
        ({"num_fewshot": 1.5}, "num_fewshot must be an integer"),
    ],
)
def test_bad_values_are_config_errors(fields, message):
    with pytest.raises(ConfigError, match=message):
        RunConfig(model=None, tasks=("t",), **fields)


def test_the_api_takes_the_options_under_the_cli_names():
    config = run_config(
        tasks="smoke_arithmetic", dtype="float16", revision="v1", trust_remote_code=True, system_prompt="Be brief.",
        no_chat_template=True, num_fewshot=0, limit=0.25, override_tasks=True,
    )  # fmt: skip
    assert config.model_options == ModelOptions("float16", "v1", True)
    assert config.chat_format == ChatFormat(chat_template=False, template_system=True)
    recorded = config.to_json()
    for key, value in [("dtype", "float16"), ("revision", "v1"), ("trust_remote_code", True), ("limit", 0.25)]:
        assert recorded[key] == value
    assert recorded["system_prompt"] == "Be brief." and recorded["chat_template"] is False
    assert recorded["num_fewshot"] == 0 and recorded["no_system_prompt"] is False
    assert run_config(tasks="x", no_system_prompt=True).chat_format.template_system is False


BAD_CLI = {
    "dtype": (["--dtype", "float8"], "Invalid value for '--dtype'"),
    "limit zero": (["--limit", "0"], "limit must be >= 1"),
    "limit above one, not whole": (["--limit", "1.5"], "limit must be >= 1"),
    "limit negative share": (["--limit", "-0.1"], "limit must be >= 1"),
    "limit not a number": (["--limit", "tenth"], "not a number of documents nor a fraction"),
    "negative few-shot": (["--num-fewshot", "-1"], "Invalid value for '--num-fewshot'"),
    "both system options": (["--system-prompt", "Hi.", "--no-system-prompt"], "exclude each other"),
    "few-shot without examples": (["--num-fewshot", "2"], "task smoke_arithmetic declares no few-shot examples"),
    "few-shot of perplexity": (
        ["--tasks", "heldout_perplexity", "--data-dir", "{data}", "--num-fewshot", "1"],
        "task heldout_perplexity takes no few-shot examples",
    ),
    "loading options on a server": (
        ["--backend", "openai", "--base-url", "http://127.0.0.1:9/v1", "--dtype", "float16"],
        "do not apply to --backend openai",
    ),
}


@pytest.mark.parametrize("case", list(BAD_CLI))
def test_bad_run_controls_are_one_error_line(cli, tmp_path, case):
    args, message = BAD_CLI[case]
    (tmp_path / "data" / "alpaca").mkdir(parents=True)
    (tmp_path / "data" / "alpaca" / "alpaca_data.json").write_text(
        json.dumps([{"instruction": "Say hi.", "input": "", "output": "Hi."}])
    )
    args = [a.format(data=tmp_path / "data") for a in args]
    if "--tasks" not in args:
        args = ["--tasks", "smoke_arithmetic", *args]
    result = cli("run", *args, "--output-dir", str(tmp_path / "out"), "--no-cache", "--quiet")
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "out").exists()


def test_run_help_describes_every_option(cli):
    result = cli("run", "--help", env={"COLUMNS": "200"})
    assert result.returncode == 0
    options = [line.split()[0] for line in result.stdout.splitlines() if line.startswith("  --")]
    described = [line for line in result.stdout.splitlines() if line.startswith("  --")]
    assert len(options) > 40
    for line in described:
        assert len(line.split(None, 2)) == 3 or "[" in line, f"no description: {line}"
    assert "hf (transformers), vllm" in result.stdout and "openai" in result.stdout


# Rendering: the chat template, its default system turn, plain text --------------------------------------


def test_smollm_adds_a_system_turn_by_default_and_no_system_prompt_removes_it(embedded_tokenizer):
    default = render_chat(embedded_tokenizer, CHAT)
    assert SMOLLM_DEFAULT in default  # what every prompt had, unseen
    bare = render_chat(embedded_tokenizer, CHAT, ChatFormat(template_system=False))
    assert bare == "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n"
    own = render_chat(embedded_tokenizer, [{"role": "system", "content": "Be brief."}, *CHAT])
    assert "Be brief." in own and SMOLLM_DEFAULT not in own
    assert render_chat(embedded_tokenizer, CHAT, ChatFormat(chat_template=False)) == "What is 2+2?"


class _Tokenizer:
    """A stand-in with transformers' apply_chat_template semantics (sandboxed Jinja, raise_exception)."""

    def __init__(self, template: str, bos: str | None = None) -> None:
        self.chat_template, self.bos_token = template, bos

    def apply_chat_template(self, messages, tokenize=False, add_generation_prompt=False):  # noqa: ANN001, ANN201
        def raise_exception(message: str) -> None:
            raise jinja2.TemplateError(message)

        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
        env.globals["raise_exception"] = raise_exception
        return env.from_string(self.chat_template).render(
            messages=messages, add_generation_prompt=add_generation_prompt, bos_token=self.bos_token
        )


LLAMA3_LIKE = (  # BOS first, a default system turn with a date line when there is none
    "{{ bos_token }}{% if messages[0]['role'] != 'system' %}<|sh|>system<|eh|>\n\nToday: 1 Jan<|eot|>{% endif %}"
    "{% for m in messages %}<|sh|>{{ m['role'] }}<|eh|>\n\n{% if m['role'] == 'system' %}Today: 1 Jan\n{% endif %}"
    "{{ m['content'] }}<|eot|>{% endfor %}{% if add_generation_prompt %}<|sh|>assistant<|eh|>\n\n{% endif %}"
)
NO_DEFAULT = (
    "{% for m in messages %}[{{ m['role'] }}]{{ m['content'] }}\n{% endfor %}{% if add_generation_prompt %}[assistant]"
    "{% endif %}"
)
REFUSES_SYSTEM = (
    "{% for m in messages %}{% if m['role'] == 'system' %}{{ raise_exception('no system role') }}{% endif %}"
    "[{{ m['role'] }}]{{ m['content'] }}{% endfor %}"
)
SYSTEM_FIRST_ALWAYS = "<s>[system]You are Bot.{% for m in messages %}[{{ m['role'] }}]{{ m['content'] }}{% endfor %}"


def test_no_system_turn_with_other_chat_templates():
    bare = render_chat(_Tokenizer(LLAMA3_LIKE, "<|bot|>"), CHAT, ChatFormat(template_system=False))
    assert bare == "<|bot|><|sh|>user<|eh|>\n\nWhat is 2+2?<|eot|><|sh|>assistant<|eh|>\n\n"
    plain = _Tokenizer(NO_DEFAULT)
    assert render_chat(plain, CHAT, ChatFormat(template_system=False)) == render_chat(plain, CHAT)
    with pytest.raises(ConfigError, match="cannot render a chat without a system turn; give --system-prompt"):
        render_chat(_Tokenizer(REFUSES_SYSTEM), CHAT, ChatFormat(template_system=False))
    with pytest.raises(ConfigError, match="writes a system turn of its own in every chat"):
        render_chat(_Tokenizer(SYSTEM_FIRST_ALWAYS), CHAT, ChatFormat(template_system=False))


# Task options: system prompt and few-shot examples ---------------------------------------------------


@pytest.fixture
def fewshot_tasks(tmp_path):
    folder = tmp_path / "tasks"
    folder.mkdir()
    data = tmp_path / "docs.jsonl"
    data.write_text("".join(json.dumps({"question": f"{i}+1?", "answer": str(i + 1)}) + "\n" for i in range(10)))
    (folder / "shots.yaml").write_text(
        f"data: {{path: {data}}}\nanswer_field: answer\n"
        "prompt: {system: 'Answer with a number.', template: 'Q: {{ question }}'}\n"
        "fewshot:\n  examples: [{question: '1+1?', answer: '2'}, {question: '3+3?', answer: '6'}]\n"
        "  answer: 'The answer is {{ answer }}.'\n"
        "metrics: [numeric_exact_match]\n"
    )
    return folder


def _prepared_messages(folder, **options):
    config = RunConfig(model=None, tasks=("shots",), task_dirs=(folder,), **options)
    spec = with_run_options([task_registry(folder).get("shots")], config)[0]
    return render_messages(spec, {"question": "5+1?"})


def test_few_shot_examples_become_turns_before_the_document(fewshot_tasks):
    assert [m["role"] for m in _prepared_messages(fewshot_tasks)] == ["system", "user"]  # default: 0 shots
    messages = _prepared_messages(fewshot_tasks, num_fewshot=2)
    assert [m["content"] for m in messages] == [
        "Answer with a number.", "Q: 1+1?", "The answer is 2.", "Q: 3+3?", "The answer is 6.", "Q: 5+1?",
    ]  # fmt: skip
    with pytest.raises(ConfigError, match="has 2 few-shot examples; --num-fewshot 3 asks for more"):
        _prepared_messages(fewshot_tasks, num_fewshot=3)


def test_system_prompt_replaces_or_removes_the_tasks(fewshot_tasks):
    assert _prepared_messages(fewshot_tasks, system_prompt="Be brief.")[0] == {"role": "system", "content": "Be brief."}
    assert [m["role"] for m in _prepared_messages(fewshot_tasks, no_system_prompt=True)] == ["user"]
    gsm8k = task_registry().get("gsm8k")
    config = RunConfig(model=None, tasks=("gsm8k",), prompt_style="boxed", system_prompt="Think.")
    spec = with_run_options([gsm8k], config)[0]
    assert render_messages(spec, {"question": "1+1?"})[0]["content"] == "Think."


def test_lm_eval_tasks_take_num_fewshot():
    spec = with_run_options([task_registry().get("arc_challenge")], RunConfig(model=None, tasks=(), num_fewshot=3))
    assert spec[0].lm_eval.num_fewshot == 3


# Backend kind and precision in the cache key -------------------------------------------------------------


class _Stub(Backend):
    """One model (the same fingerprint) under different backend kinds and precisions."""

    def __init__(self, name: str, precision: str) -> None:
        self.name, self._precision, self.calls = name, precision, 0

    fingerprint = "local@same-weights"  # type: ignore[assignment]
    model_name = "m"  # type: ignore[assignment]

    @property
    def precision(self) -> str:
        return self._precision

    def render(self, messages: Sequence[dict[str, str]]) -> str:
        return messages[-1]["content"]

    def generate(self, batch: PromptBatch, on_progress: Callable[[int], None] | None = None) -> list[list[str]]:
        self.calls += 1
        return [[f"{self.name}/{self._precision}:{p}:{i}" for i in range(batch.sampling.n)] for p in batch.prompts]


def test_samples_are_never_reused_across_backends_or_precisions(tmp_path):
    cache = GenerationCache(tmp_path / "generations.sqlite")
    sampling = SamplingConfig(n=2, max_tokens=8)
    seen = {}
    runs = [("hf", "float32"), ("hf", "bfloat16"), ("vllm", "bfloat16"), ("openai", "server"), ("hf", "float32")]
    for index, (name, precision) in enumerate(runs):
        backend = _Stub(name, precision)
        stats = CacheStats()
        seen[(name, precision)] = generate_cached(backend, cache, ["a", "b"], sampling, stats)
        reused = index == len(runs) - 1  # the last is the first again: served from the cache
        assert (backend.calls, stats.hits) == ((0, 4) if reused else (2, 0)), (name, precision)
    assert seen[("hf", "bfloat16")][0][0] == "hf/bfloat16:a:0"
    cache.close()


def test_the_transformers_backend_reports_the_dtype_it_loads():
    assert HFBackend(None, device="cpu").precision == "float32"
    assert HFBackend(None, device="cuda").precision == "bfloat16"
    bf16 = HFBackend(None, device="cpu", options=ModelOptions(dtype="bfloat16"))
    assert bf16.precision == "bfloat16"
    assert "backend=hf|dtype=bfloat16" in bf16.sample_identity
    assert bf16.sample_identity != HFBackend(None, device="cpu").sample_identity
    plain = HFBackend(None, device="cpu", chat_format=ChatFormat(chat_template=False))
    assert plain.render_identity != HFBackend(None, device="cpu").render_identity


# End to end on the embedded model ------------------------------------------------------------------------

ARGS = ("--tasks", "smoke_arithmetic", "--n", "2", "--max-tokens", "8", "--device", "cpu", "--quiet")


def _run(cli, root, name, *args):
    out, cache = root / "out", root / "cache"
    result = cli("run", *ARGS, *args, "--output-dir", str(out), "--run-id", name, "--cache-dir", str(cache))
    assert result.returncode == 0, result.stderr
    results = json.loads((out / name / "results.json").read_text())
    samples = [json.loads(line) for line in (out / name / "samples.jsonl").read_text().splitlines()]
    return results, samples


def test_end_to_end_controls_cache_and_record(cli, tmp_path):
    # A share of the documents, no system turn at all, float32.
    first, samples = _run(cli, tmp_path, "bare", "--limit", "0.2", "--no-system-prompt", "--dtype", "float32")
    task = first["tasks"]["smoke_arithmetic"]
    assert task["n_docs"] == 3  # 12 documents x 0.2, rounded up
    assert first["backend"] == "hf" and first["dtype"] == "float32"
    config = first["config"]
    assert (config["limit"], config["no_system_prompt"], config["dtype"], config["chat_template"]) == (
        0.2, True, "float32", True,
    )  # fmt: skip
    assert all("system" not in s["prompt"] and s["prompt"].startswith("<|im_start|>user\n") for s in samples)
    assert first["cache"]["generated"] == 6

    # The same run again is served from the cache; bfloat16 is not.
    again, _ = _run(cli, tmp_path, "again", "--limit", "0.2", "--no-system-prompt", "--dtype", "float32")
    assert again["cache"] == {"hits": 6, "generated": 0}
    bf16, _ = _run(cli, tmp_path, "bf16", "--limit", "0.2", "--no-system-prompt", "--dtype", "bfloat16")
    assert bf16["dtype"] == "bfloat16" and bf16["cache"] == {"hits": 0, "generated": 6}

    # Every key of the cache file is distinct per precision: three runs, two sets of samples.
    db = sqlite3.connect(tmp_path / "cache" / "generations.sqlite")
    assert db.execute("SELECT COUNT(*) FROM samples").fetchone()[0] == 12
    db.close()

    # A real cache file, damaged: one error line naming it, the file left as it is.
    path = tmp_path / "cache" / "generations.sqlite"
    data = bytearray(path.read_bytes())
    data[4096:4608] = b"garbage!" * 64
    path.write_bytes(bytes(data))
    result = cli("run", *ARGS, "--limit", "1", "--output-dir", str(tmp_path / "o2"), "--cache-dir", str(path.parent))
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert str(path) in result.stderr and "--no-cache" in result.stderr and path.read_bytes() == bytes(data)


def test_python_api_system_prompt_and_plain_text(tmp_path):
    result = evalkit.evaluate(
        tasks="smoke_arithmetic", limit=1, n=1, max_tokens=4, device="cpu", system_prompt="Be brief.",
        output_dir=tmp_path / "out", run_id="api", cache_dir=tmp_path / "cache", quiet=True,
    )  # fmt: skip
    prompt = result.samples()[0]["prompt"]
    assert prompt.startswith("<|im_start|>system\nBe brief.<|im_end|>") and SMOLLM_DEFAULT not in prompt
    assert result.config["system_prompt"] == "Be brief." and result.dtype == "float32"
    plain = evalkit.evaluate(
        tasks="smoke_arithmetic", limit=1, n=1, max_tokens=4, device="cpu", no_chat_template=True,
        output_dir=tmp_path / "out", run_id="plain", cache_dir=tmp_path / "cache", quiet=True,
    )  # fmt: skip
    assert "<|im_start|>" not in plain.samples()[0]["prompt"]
    with pytest.raises(EvalkitError, match="run id"):
        evalkit.evaluate(tasks="smoke_arithmetic", run_id="../x", output_dir=tmp_path / "out")
