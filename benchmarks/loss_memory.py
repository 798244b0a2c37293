"""Peak memory and time of forward + backward of the training losses, as ratios to CE.

Each (loss, vocabulary size) runs in a fresh process on the same machine, in one invocation of
this script. On a GPU, peak memory is `torch.cuda.max_memory_allocated` above the inputs; on CPU
it is the growth of the process's peak resident set (ru_maxrss) above the inputs.

Losses: CE as transformers computes it (shifted contiguous logits, F.cross_entropy; the ratio
base), evalkit's ce_loss, gem_loss (h = linear and logsigmoid), tofu_loss, and seed 000's
Listing 1 (both h; tests/reference_losses.py).

Targets: GEM <= 1.05x CE memory and <= 1.1x CE time; GEM <= 0.5x Listing 1 memory.
Usage: python benchmarks/loss_memory.py [--tokens 512] [--vocab 32768 131072] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

CHILD = r"""
import json, resource, statistics, sys, time
import torch, torch.nn.functional as F
sys.path.insert(0, sys.argv[1])
from evalkit.train.losses import ce_loss, gem_loss, tofu_loss
from tests.reference_losses import listing1_gem_loss

name, tokens, vocab, repeats = sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])

def transformers_ce(logits, labels):
    shift_logits = logits[..., :-1, :].contiguous()
    shift_labels = labels[..., 1:].contiguous()
    return F.cross_entropy(shift_logits.view(-1, shift_logits.shape[-1]), shift_labels.view(-1), ignore_index=-100)

LOSSES = {
    "ce (transformers)": transformers_ce,
    "ce_loss": ce_loss,
    "gem linear": lambda z, y: gem_loss(z, y, beta=0.7, h="linear"),
    "gem logsigmoid": lambda z, y: gem_loss(z, y, beta=0.7, h="logsigmoid"),
    "tofu": lambda z, y: tofu_loss(z, y, beta=0.8, gamma=3.0),
    "listing1 linear": lambda z, y: listing1_gem_loss(z, y, beta=0.7, h="linear"),
    "listing1 log_sigmoid": lambda z, y: listing1_gem_loss(z, y, beta=0.7, h="log_sigmoid"),
}
fn = LOSSES[name]
device = "cuda" if torch.cuda.is_available() else "cpu"
dtype = torch.bfloat16 if device == "cuda" else torch.float32
torch.manual_seed(0)
batch = 2
logits = torch.randn(batch, tokens // batch, vocab, device=device, dtype=dtype)
labels = torch.randint(0, vocab, (batch, tokens // batch), device=device)
labels[:, : tokens // 8] = -100  # a masked prompt

def step():
    x = logits.detach().requires_grad_(True)
    fn(x, labels).backward()
    return x.grad

if device == "cuda":
    torch.cuda.synchronize(); torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated()
    step(); torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated() - before
else:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    step()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before
times = []
for _ in range(repeats):
    if device == "cuda": torch.cuda.synchronize()
    t0 = time.perf_counter(); step()
    if device == "cuda": torch.cuda.synchronize()
    times.append(time.perf_counter() - t0)
print(json.dumps({"peak_bytes": peak, "seconds": statistics.median(times), "device": device,
                  "logits_bytes": logits.numel() * logits.element_size()}))
"""

NAMES = [
    "ce (transformers)",
    "ce_loss",
    "gem linear",
    "gem logsigmoid",
    "tofu",
    "listing1 linear",
    "listing1 log_sigmoid",
]


def measure(name: str, tokens: int, vocab: int, repeats: int) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(REPO), name, str(tokens), str(vocab), str(repeats)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tokens", type=int, default=512)
    parser.add_argument("--vocab", type=int, nargs="+", default=[32768, 131072])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    for vocab in args.vocab:
        rows = {name: measure(name, args.tokens, vocab, args.repeats) for name in NAMES}
        base = rows["ce (transformers)"]
        device = base["device"]
        print(f"\nV = {vocab}, {args.tokens} tokens, {device}; logits {base['logits_bytes'] / 2**20:.0f} MiB")
        print(f"{'loss':<22}{'peak MiB':>10}{'x CE mem':>10}{'x Listing1':>12}{'ms':>10}{'x CE time':>11}")
        for name, r in rows.items():
            listing = rows["listing1 log_sigmoid" if "sigmoid" in name else "listing1 linear"]
            print(
                f"{name:<22}{r['peak_bytes'] / 2**20:>10.0f}{r['peak_bytes'] / base['peak_bytes']:>10.2f}"
                f"{r['peak_bytes'] / listing['peak_bytes']:>12.2f}{1000 * r['seconds']:>10.0f}"
                f"{r['seconds'] / base['seconds']:>11.2f}"
            )


if __name__ == "__main__":
    main()
