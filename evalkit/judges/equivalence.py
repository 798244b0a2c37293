"""Equivalence judges for NoveltyBench's partition: are two responses to a prompt the same?

``--equivalence`` picks the test, and its name is recorded in results.json:
- ``deberta[:PATH]``: the official classifier (yimingzhang/deberta-v3-large-generation-similarity,
  tokenizer microsoft/deberta-v3-large), equivalent when P(similar) > 0.102, each text cut to 128
  tokens, input ``[CLS] a [SEP] b [SEP]``; texts of <= 5 words use the unigram rule instead.
- ``rouge1[:THRESHOLD]``: ROUGE-1 F1 (rouge_score, no stemming) > 0.458, NoveltyBench's own
  ``unigram`` alternative (which does not apply the short-text rule; neither does this).
- ``sbert[:THRESHOLD]``: cosine similarity of sentence embeddings (the offline all-MiniLM-L6-v2)
  > 0.8, with the short-text rule. The threshold is a plain choice, not calibrated against
  NoveltyBench's human labels: results under it are not comparable with published numbers.
- ``llm[:MODEL]``: a generation model asked, greedily, whether the two responses are
  semantically equivalent (judges/noveltybench_equivalence.txt: NoveltyBench's own GPT-4 prompt,
  "For a given prompt, determine whether the two responses are semantically equivalent.", asking
  for Yes or No); equivalent iff the answer starts with "yes". MODEL defaults to the run's judge
  (``--judge``, on any backend) and else to the embedded SmolLM2-135M-Instruct, which runs offline
  but is a weak judge. Short-text rule first.
Methods are registered in ``EQUIVALENCE_METHODS`` (name -> ``(argument, JudgeConfig, ModelPool)
-> Method``); a method's test answers ``same(representatives, sample, chat)`` with one verdict per
representative, so an LLM judge of equivalence (which needs the prompt) plugs in as another method.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evalkit.backends import Backend, PromptBatch, make_backend
from evalkit.config import BackendOptions, JudgeConfig, SamplingConfig
from evalkit.errors import ConfigError
from evalkit.judges.base import JUDGES, Judge, cached_values, score_key
from evalkit.judges.llm_judge import judge_backend
from evalkit.judges.pool import ModelPool
from evalkit.metrics.diversity import load_sbert
from evalkit.metrics.novelty import partition, short_text_equality
from evalkit.models import (
    EQUIVALENCE_CLASSIFIER,
    ResolvedModel,
    choose_device,
    default_sentence_encoder,
    load_tokenizer,
    load_weights,
    resolve_model,
)
from evalkit.registry import Registry, unknown_name
from evalkit.resources import judges_dir

DEBERTA_CLASSIFIER = "yimingzhang/deberta-v3-large-generation-similarity"
DEBERTA_TOKENIZER = "microsoft/deberta-v3-large"
DEBERTA_THRESHOLD = 0.102
ROUGE1_THRESHOLD = 0.458
SBERT_THRESHOLD = 0.8


@dataclass(frozen=True)
class Method:
    """One equivalence test: what results.json records, the cache fingerprint, and a maker of the
    (possibly model-backed) test object, called on first need."""

    setting: str
    fingerprint: str
    make: Callable[[], Any]


MethodFactory = Callable[[str | None, JudgeConfig, ModelPool], Method]
EQUIVALENCE_METHODS: Registry[MethodFactory] = Registry("equivalence method")


def parse_method(spec: str) -> tuple[str, str | None]:
    method, _, argument = spec.partition(":")
    if method not in EQUIVALENCE_METHODS:
        raise ConfigError(str(unknown_name("equivalence method", method, EQUIVALENCE_METHODS.names())))
    return method, argument or None


def _threshold(method: str, argument: str | None, default: float) -> float:
    if argument is None:
        return default
    try:
        value = float(argument)
    except ValueError:
        raise ConfigError(f"--equivalence {method}:{argument}: the threshold must be a number") from None
    if not 0 <= value <= 1:
        raise ConfigError(f"--equivalence {method}:{argument}: the threshold must be in [0, 1]")
    return value


class DebertaEquivalence:
    def __init__(self, model: ResolvedModel, device: str) -> None:
        self.model_ref, self.device = model, device
        self._model: Any = None

    def _load(self) -> None:
        self.device = choose_device(self.device)
        source = self.model_ref.source
        own_tokenizer = isinstance(source, Path) and (source / "tokenizer_config.json").is_file()
        self.tokenizer = load_tokenizer(self.model_ref, None, None if own_tokenizer else DEBERTA_TOKENIZER)
        self._model = load_weights(self.model_ref, "sequence_classification", self.device, dtype="float32")

    def similar_probability(self, a: str, b: str) -> float:
        import torch  # heavy: only when the classifier runs

        if self._model is None:
            self._load()
        tok = self.tokenizer
        ids = [tok.cls_token_id]
        for text in (a, b):
            ids += tok.encode(text, truncation=True, max_length=128, add_special_tokens=False) + [tok.sep_token_id]
        first = ids.index(tok.sep_token_id) + 1
        types = [0] * first + [1] * (len(ids) - first)
        with torch.inference_mode():
            logits = self._model(
                input_ids=torch.tensor([ids], device=self.device),
                token_type_ids=torch.tensor([types], device=self.device),
            ).logits
        return float(logits.softmax(-1)[0, 1])

    def same(self, reps: Sequence[str], sample: str, chat: Any = None) -> list[bool]:
        out = []
        for rep in reps:
            short = short_text_equality(rep, sample)
            out.append(short if short is not None else self.similar_probability(rep, sample) > DEBERTA_THRESHOLD)
        return out


class Rouge1Equivalence:
    def __init__(self, threshold: float) -> None:
        from rouge_score import rouge_scorer  # heavy (it imports NLTK): only for this method

        self.threshold = threshold
        self.scorer = rouge_scorer.RougeScorer(["rouge1"])

    def same(self, reps: Sequence[str], sample: str, chat: Any = None) -> list[bool]:
        return [self.scorer.score(rep, sample)["rouge1"].fmeasure > self.threshold for rep in reps]


class SbertEquivalence:
    def __init__(self, threshold: float) -> None:
        self.threshold = threshold

    def same(self, reps: Sequence[str], sample: str, chat: Any = None) -> list[bool]:
        import torch  # heavy: only when the test runs

        emb = load_sbert().encode([*reps, sample], convert_to_tensor=True, show_progress_bar=False).float()
        emb = torch.nn.functional.normalize(emb, dim=-1)
        cosine = (emb[:-1] @ emb[-1]).tolist()
        out = []
        for rep, cos in zip(reps, cosine):
            short = short_text_equality(rep, sample)
            out.append(short if short is not None else cos > self.threshold)
        return out


class LLMEquivalence:
    """Asks a generation backend, one greedy batch per sample (one prompt per representative)."""

    def __init__(self, backend: Backend, template: str) -> None:
        self.backend = backend
        self.system, _, self.user = (part.strip() for part in template.partition("\n===\n"))

    def same(self, reps: Sequence[str], sample: str, chat: Any = None) -> list[bool]:
        prompt = next((m["content"] for m in reversed(chat or []) if m["role"] == "user"), "")
        verdicts: list[bool | None] = [short_text_equality(rep, sample) for rep in reps]
        asked = [i for i, v in enumerate(verdicts) if v is None]
        chats = [
            [
                {"role": "system", "content": self.system},
                {"role": "user", "content": self.user.format(prompt=prompt, response_a=reps[i], response_b=sample)},
            ]
            for i in asked
        ]
        if chats:
            greedy = SamplingConfig(n=1, temperature=0.0, max_tokens=4)
            answers = self.backend.generate(PromptBatch([self.backend.render(c) for c in chats], greedy))
            for i, (answer,) in zip(asked, answers):
                verdicts[i] = is_yes(answer)
        return [bool(v) for v in verdicts]


def is_yes(answer: str) -> bool:
    """A judge's answer read as a verdict: it starts with "yes" (case, spaces and quotes aside)."""
    return answer.strip().strip("\"'*").lower().startswith("yes")


def equivalence_template() -> str:
    return (judges_dir() / "noveltybench_equivalence.txt").read_text(encoding="utf-8")


@EQUIVALENCE_METHODS.register("llm")
def _llm(argument: str | None, config: JudgeConfig, pool: ModelPool) -> Method:
    if argument is None and (config.model or config.options.base_url):
        backend = judge_backend(config, pool)  # the run's judge (--judge, on any backend)
    else:  # the named model, or the embedded one, with transformers; loads on first use
        backend = pool.get(
            "backend", f"hf:{argument}", lambda: make_backend("hf", argument, pool.device, 64, BackendOptions())
        )
    template = equivalence_template()
    digest = hashlib.sha256(template.encode()).hexdigest()[:12]
    return Method(
        f"llm:{backend.model_name}", f"llm:{backend.fingerprint}:{digest}", lambda: LLMEquivalence(backend, template)
    )


@EQUIVALENCE_METHODS.register("deberta")
def _deberta(argument: str | None, config: JudgeConfig, pool: ModelPool) -> Method:
    model = resolve_model(argument or DEBERTA_CLASSIFIER, EQUIVALENCE_CLASSIFIER)
    setting = f"deberta:{model.source}" if argument else "deberta"
    fingerprint = f"deberta:{model.source}>{DEBERTA_THRESHOLD}"
    return Method(setting, fingerprint, lambda: DebertaEquivalence(model, pool.device))


@EQUIVALENCE_METHODS.register("rouge1")
def _rouge1(argument: str | None, config: JudgeConfig, pool: ModelPool) -> Method:
    threshold = _threshold("rouge1", argument, ROUGE1_THRESHOLD)
    return Method(f"rouge1:{threshold}", f"rouge1:{threshold}", lambda: Rouge1Equivalence(threshold))


@EQUIVALENCE_METHODS.register("sbert")
def _sbert(argument: str | None, config: JudgeConfig, pool: ModelPool) -> Method:
    threshold = _threshold("sbert", argument, SBERT_THRESHOLD)
    model = Path(default_sentence_encoder()).name
    return Method(f"sbert:{threshold}", f"sbert:{model}>{threshold}", lambda: SbertEquivalence(threshold))


class EquivalenceJudge(Judge):
    """The partition of every document's samples into equivalence classes (``_partition``)."""

    kind = "equivalence"

    def __init__(self, options: dict[str, Any], config: JudgeConfig, pool: ModelPool) -> None:
        unknown = sorted(set(options) - {"method"})
        if unknown:
            raise ConfigError(f"equivalence judge: unknown option(s) {unknown}")
        name, argument = parse_method(config.equivalence or options.get("method") or "deberta")
        self.method = EQUIVALENCE_METHODS.get(name)(argument, config, pool)
        self.setting, self.fingerprint = self.method.setting, self.method.fingerprint
        self.pool = pool

    @property
    def test(self) -> Any:
        """The equivalence test, made (its model loaded) on first need, once per run."""
        return self.pool.get("equivalence", self.fingerprint, self.method.make)

    def annotate(self, chats, docs, completions, cache) -> list[dict[str, Any]]:  # noqa: ANN001
        keys = [score_key(self.fingerprint, chat, list(samples)) for chat, samples in zip(chats, completions)]

        def compute(missing: list[int]) -> list[list[int]]:
            test = self.test
            return [
                partition(completions[i], same_many=lambda reps, s, chat=chats[i]: test.same(reps, s, chat))
                for i in missing
            ]

        return [{"_partition": labels} for labels in cached_values(cache, keys, compute)]


JUDGES.register("equivalence")(EquivalenceJudge)
