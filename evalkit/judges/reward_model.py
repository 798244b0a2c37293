"""Reward-model scoring: a sequence-classification model scores (prompt, response) pairs.

The pair is written with the reward model's own chat template ([user prompt, assistant
response]), tokenized without adding special tokens again (the template carries them), batched
by length, padded on either side and run in bf16 on a GPU (fp32 on CPU). The reward is the head's
output at the last real token of each sequence, found from the attention mask: transformers'
heads find it from ``pad_token_id`` instead, which picks the wrong token when the pad token is
also the template's last token (a common case: pad = eos). Position ids are computed from the
attention mask, so left padding leaves every real token at the position it has unpadded.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

from evalkit.config import JudgeConfig
from evalkit.errors import DataError, ModelError
from evalkit.judges.base import JUDGES, Chat, Judge, cached_values, score_key
from evalkit.judges.pool import ModelPool
from evalkit.models import REWARD_MODEL, ResolvedModel, choose_device, load_tokenizer, load_weights, resolve_model

# The reward models the papers name ("Preserving Diversity in SFT": AlpacaEval best-of-N; NoveltyBench's utility).
FSFAIRX = "sfairXC/FsfairX-LLaMA3-RM-v0.1"
SKYWORK_GEMMA = "Skywork/Skywork-Reward-Gemma-2-27B-v0.2"
DEFAULT_MAX_LENGTH = 4096


class RewardModel:
    """A loaded reward model: ``score(chats, responses)`` -> one float per pair."""

    def __init__(
        self,
        model: ResolvedModel,
        device: str = "auto",
        batch_size: int = 8,
        padding_side: str = "left",
        max_length: int = DEFAULT_MAX_LENGTH,
    ) -> None:
        if padding_side not in ("left", "right"):
            raise ModelError(f"padding_side must be left or right, got {padding_side!r}")
        self.device = choose_device(device)
        self.tokenizer = load_tokenizer(model, padding_side=None)  # batches are padded here, on either side
        self.model = load_weights(model, "sequence_classification", self.device)
        pad = self.tokenizer.pad_token_id
        if pad is None:
            pad = self.tokenizer.eos_token_id if self.tokenizer.eos_token_id is not None else 0
        self.pad_id = int(pad)
        if self.model.config.pad_token_id is None:  # transformers' own pooling refuses batches without it
            self.model.config.pad_token_id = self.pad_id
        self.batch_size = batch_size
        self.padding_side = padding_side
        limits = [max_length, getattr(self.model.config, "max_position_embeddings", None)]
        self.max_length = min(x for x in limits if isinstance(x, int) and x > 0)

    def token_ids(self, chat: Chat, response: str) -> list[int]:
        """The pair in the model's chat template (or prompt, blank line, response without one)."""
        tok = self.tokenizer
        if tok.chat_template:
            try:
                text = tok.apply_chat_template([*chat, {"role": "assistant", "content": response}], tokenize=False)
            except Exception as exc:  # e.g. Gemma's template refuses a system turn
                raise ModelError(f"the reward model's chat template refuses this chat: {exc}") from None
            ids = tok(text, add_special_tokens=False)["input_ids"]
        else:
            prompt = "\n\n".join(m["content"] for m in chat)
            ids = tok(f"{prompt}\n\n{response}", add_special_tokens=True)["input_ids"]
        return list(ids[: self.max_length])  # keep the start, as truncation=True does

    def score(self, chats: Sequence[Chat], responses: Sequence[str]) -> list[float]:
        sequences = [self.token_ids(c, r) for c, r in zip(chats, responses, strict=True)]
        order = sorted(range(len(sequences)), key=lambda i: -len(sequences[i]))
        rewards = [0.0] * len(sequences)
        for start in range(0, len(order), self.batch_size):
            chunk = order[start : start + self.batch_size]
            for i, r in zip(chunk, self._forward([sequences[i] for i in chunk])):
                rewards[i] = r
        return rewards

    def _forward(self, batch: list[list[int]]) -> list[float]:
        import torch  # heavy: only when rewards are computed

        width = max(len(s) for s in batch)
        ids = torch.full((len(batch), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, seq in enumerate(batch):
            span = slice(width - len(seq), width) if self.padding_side == "left" else slice(0, len(seq))
            ids[row, span] = torch.tensor(seq, dtype=torch.long)
            mask[row, span] = 1
        ids, mask = ids.to(self.device), mask.to(self.device)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        last = (
            torch.full((len(batch),), width - 1, device=self.device)
            if self.padding_side == "left"
            else mask.sum(-1) - 1
        )
        with torch.inference_mode():
            head = getattr(self.model, "score", None)
            if head is not None:  # decoder reward models (Llama, Gemma 2, Mistral, Qwen): pool ourselves
                hidden = self.model.base_model(input_ids=ids, attention_mask=mask, position_ids=positions)
                logits = head(hidden.last_hidden_state)[torch.arange(len(batch), device=self.device), last]
            else:  # encoders pool their first token: padding cannot move it
                logits = self.model(input_ids=ids, attention_mask=mask).logits
        return logits[:, 0].float().cpu().tolist()


class RewardJudge(Judge):
    """Rewards of every sample (``_rewards``) and, with option ``reference: FIELD``, of the
    document's reference answer (``_reference_reward``), with the same chat as the samples."""

    kind = "reward_model"

    def __init__(self, options: dict[str, Any], config: JudgeConfig, pool: ModelPool) -> None:
        unknown = sorted(set(options) - {"model", "reference", "batch_size", "max_length"})
        if unknown:
            raise ModelError(f"reward_model judge: unknown option(s) {unknown}")
        self.setting = config.reward_model or options.get("model") or FSFAIRX
        self.model_ref = resolve_model(self.setting, REWARD_MODEL)
        self.max_length = int(options.get("max_length", DEFAULT_MAX_LENGTH))
        self.fingerprint = f"{self.model_ref.fingerprint}:max_length={self.max_length}"
        self.reference = options.get("reference")
        self.batch_size = int(options.get("batch_size", 8))
        self.pool = pool

    @property
    def model(self) -> RewardModel:
        """Loaded on first need, once per run for all the tasks that use it. Loading another
        reward model first releases the previous one."""
        return self.pool.get(
            "reward_model",
            self.fingerprint,
            lambda: RewardModel(self.model_ref, self.pool.device, self.batch_size, max_length=self.max_length),
            alone=True,
        )

    def rewards(self, pairs: Sequence[tuple[Chat, str]], cache: Any) -> list[float]:
        keys = [score_key(self.fingerprint, chat, response) for chat, response in pairs]

        def compute(missing: list[int]) -> list[float]:
            print(f"evalkit: scoring {len(missing)} responses with reward model {self.setting}", file=sys.stderr)
            return self.model.score([pairs[i][0] for i in missing], [pairs[i][1] for i in missing])

        return cached_values(cache, keys, compute)

    def annotate(self, chats, docs, completions, cache) -> list[dict[str, Any]]:  # noqa: ANN001
        pairs = [(chat, c) for chat, samples in zip(chats, completions) for c in samples]
        if self.reference:
            if any(self.reference not in doc for doc in docs):
                raise DataError(f"reward_model judge: some documents lack the reference field '{self.reference}'")
            pairs += [(chat, str(doc[self.reference])) for chat, doc in zip(chats, docs)]
        rewards = self.rewards(pairs, cache)
        out, at = [], 0
        for samples in completions:
            out.append({"_rewards": rewards[at : at + len(samples)]})
            at += len(samples)
        if self.reference:
            for row, r in zip(out, rewards[at:]):
                row["_reference_reward"] = r
        return out


JUDGES.register("reward_model")(RewardJudge)
