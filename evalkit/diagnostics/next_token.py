"""The next-token distribution of one or several models for a probe prompt ("Entropic Distribution Matching" Fig. 5).

For each model: the probe is chat-formatted (unless ``chat=False``), one forward pass gives the
distribution of the first response token, and the top tokens with their probabilities are
plotted as bars on a log axis, one panel per model, so a collapsed (CE-tuned) distribution and a
flatter one (GEM) are seen side by side.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

from evalkit.backends.hf import HFBackend
from evalkit.errors import EvalkitError


@dataclass(frozen=True)
class NextToken:
    model: str
    prompt: str  # the text the model saw (chat template applied)
    tokens: list[str]  # top tokens, most probable first
    probs: list[float]
    entropy: float  # of the full distribution, nats


def next_token_distribution(model: str | None, probe: str, top_k: int = 10, chat: bool = True) -> NextToken:
    import torch  # heavy: only when the model scores

    backend = HFBackend(model, device="cpu")
    tokenizer = backend.tokenizer
    text = backend.render([{"role": "user", "content": probe}]) if chat else probe
    ids = tokenizer(text, add_special_tokens=not chat, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        logits = backend.model(input_ids=ids.to(backend.device)).logits[0, -1].float()
    logp = torch.log_softmax(logits, dim=-1)
    top = torch.topk(logp, min(top_k, logp.numel()))
    entropy = float(-(logp.exp() * logp).sum())
    tokens = [tokenizer.decode([int(i)]) for i in top.indices]
    return NextToken(backend.model_name, text, tokens, [math.exp(float(v)) for v in top.values], entropy)


def plot_next_tokens(results: list[NextToken], output: Path, probe: str) -> None:
    """One bar panel per model: top tokens (labelled) against probability on a log axis."""
    import matplotlib  # heavy: only when plotting

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # heavy, as above

    fig, axes = plt.subplots(len(results), 1, figsize=(9, 3.2 * len(results)), squeeze=False)
    for ax, r in zip(axes[:, 0], results):
        labels = [repr(t)[1:-1] if t.strip() else repr(t) for t in r.tokens]
        bars = ax.bar(range(len(r.probs)), r.probs, color="#4C72B0")
        ax.set_yscale("log")
        ax.set_ylim(min(r.probs) / 3, 1.5)
        ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right", fontsize=9)
        ax.set_ylabel("probability (log)")
        ax.set_title(f"{r.model}  (entropy {r.entropy:.2f} nats)", fontsize=10)
        for bar, p in zip(bars, r.probs):
            ax.annotate(f"{p:.2g}", (bar.get_x() + bar.get_width() / 2, p), ha="center", va="bottom", fontsize=8)
    short = probe if len(probe) <= 80 else probe[:77] + "..."
    fig.suptitle(f"Next-token distribution for: {short!r}", fontsize=11)
    fig.tight_layout()
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(output, dpi=120)
        output.with_suffix(".json").write_text(json.dumps([asdict(r) for r in results], indent=2), encoding="utf-8")
    except OSError as exc:
        raise EvalkitError(f"cannot write {output}: {exc.strerror or exc}") from None
    finally:
        plt.close(fig)
