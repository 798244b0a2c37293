"""Chat-formatted SFT examples: Alpaca or UltraFeedback records -> token ids with the prompt masked."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evalkit.data import read_records
from evalkit.errors import DataError, DataUnavailable
from evalkit.resources import hf_offline

IGNORE_INDEX = -100
Messages = list[dict[str, str]]


def to_messages(record: dict[str, Any]) -> Messages:
    """A conversation ending with the assistant turn to learn, from the formats SFT data comes in.

    Alpaca: instruction, input (optional), output. UltraFeedback (HuggingFaceH4/ultrafeedback_binarized)
    and chat data: ``messages`` or ``chosen``, a list of {role, content}. Also prompt/response."""
    if "instruction" in record and "output" in record:
        user = str(record["instruction"])
        if str(record.get("input") or "").strip():
            user += "\n\n" + str(record["input"])
        return [{"role": "user", "content": user}, {"role": "assistant", "content": str(record["output"])}]
    for key in ("messages", "chosen"):
        turns = record.get(key)
        if isinstance(turns, list) and turns and all(isinstance(t, dict) for t in turns):
            messages = [{"role": str(t["role"]), "content": str(t["content"])} for t in turns]
            if messages[-1]["role"] == "assistant":
                return messages
    if "prompt" in record and "response" in record:
        return [
            {"role": "user", "content": str(record["prompt"])},
            {"role": "assistant", "content": str(record["response"])},
        ]
    raise DataError(
        f"unrecognised SFT record with fields {sorted(record)[:8]}: expected Alpaca (instruction, input, output), "
        "chat (messages or chosen ending with an assistant turn) or prompt/response"
    )


def load_records(source: str, split: str = "train", limit: int | None = None) -> list[dict[str, Any]]:
    """Records from a local .json/.jsonl/.csv file (optionally gzipped) or a hub dataset id."""
    path = Path(source).expanduser()
    if path.exists():
        records = read_records(path)
    elif source.startswith((".", "/", "~")) or source.endswith((".json", ".jsonl", ".csv", ".gz")):
        raise DataError(f"training data file not found: {source}")
    elif hf_offline():
        raise DataUnavailable(f"training data '{source}' is not a local file and the hub is offline")
    else:
        import datasets  # heavy: only for hub data

        try:
            records = list(datasets.load_dataset(source, split=split))
        except Exception as exc:  # datasets raises many types; all mean "cannot get this dataset"
            raise DataError(f"cannot load training data '{source}' (split {split}): {exc}") from None
    if not records:
        raise DataError(f"training data {source} is empty")
    return records[:limit] if limit else records


@dataclass(frozen=True)
class TokenizedExample:
    input_ids: list[int]
    labels: list[int]


def tokenize(messages: Messages, tokenizer: Any, max_length: int) -> TokenizedExample | None:
    """Prompt tokens labelled IGNORE_INDEX, response tokens (and the end of turn) learned.

    The prompt is the chat template up to the assistant's turn; the response follows it and ends
    with the template's end of turn (or EOS). None when the prompt alone fills max_length."""
    prompt = tokenizer.apply_chat_template(messages[:-1], tokenize=False, add_generation_prompt=True)
    full = tokenizer.apply_chat_template(messages, tokenize=False)
    if not full.startswith(prompt):  # a template that rewrites earlier turns: append the response ourselves
        full = prompt + messages[-1]["content"] + (tokenizer.eos_token or "")
    # The split point is the prompt's token count (should tokens merge across the boundary, the
    # first response token is masked with the prompt).
    n_prompt = len(tokenizer(prompt, add_special_tokens=False)["input_ids"])
    if n_prompt >= max_length:
        return None
    full_ids = tokenizer(full, add_special_tokens=False)["input_ids"][:max_length]
    return TokenizedExample(full_ids, [IGNORE_INDEX] * n_prompt + full_ids[n_prompt:])


def collate(examples: Sequence[TokenizedExample], pad_id: int) -> dict[str, Any]:
    """Right-padded batch (no packing: examples never attend to each other)."""
    import torch  # heavy: only when batches are built

    width = max(len(e.input_ids) for e in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE_INDEX, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    for row, e in enumerate(examples):
        n = len(e.input_ids)
        ids[row, :n] = torch.tensor(e.input_ids)
        labels[row, :n] = torch.tensor(e.labels)
        mask[row, :n] = 1
    return {"input_ids": ids, "labels": labels, "attention_mask": mask}
