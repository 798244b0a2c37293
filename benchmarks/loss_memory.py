"""Peak memory and time of forward + backward of the training losses, as ratios to CE.

Each (loss, vocabulary size) runs in a fresh process on the same machine, in one invocation of
this script. On a GPU, peak memory is `torch.cuda.max_memory_allocated` above the inputs, in
bf16; on CPU it is the growth of the process's peak resident set (ru_maxrss) above the inputs, in
float32.

Losses on logits [tokens, V]: CE as transformers computes it (shifted contiguous logits,
F.cross_entropy; the ratio base), evalkit's torch losses (ce_loss, gem_loss with h = linear and
logsigmoid, tofu_loss), the GEM paper's Listing 1 (both h; tests/reference_losses.py), and on a GPU
the Triton kernels of every loss (evalkit.train.kernels).

--fused-linear adds a second table: the loss from hidden states [tokens, H] (H = --hidden, 4096)
and an LM head weight [V, H], forward + backward into both. Its ratio base is the LM head matmul
followed by transformers' CE; the rows are evalkit.train.fused_linear, which never builds the
logits (impl "auto": Liger-Kernel for CE and GEM-linear on a GPU, the Triton row kernels for the
others; chunked torch on CPU).

Targets (issue 20, GPU, bf16, V = 131,072, 16,384 tokens): every loss <= 1.1x CE's time and <=
0.35x its peak memory; fused GEM/TOFU <= 0.1x the peak memory of (LM head + CE), <= 1.2x its time.
Usage: python benchmarks/loss_memory.py [--tokens N] [--vocab V ...] [--repeats 3] [--fused-linear]
       [--hidden 4096]
Defaults: GPU 16,384 tokens, V = 32,768 / 131,072 / 262,144; CPU 512 tokens, V = 32,768 / 131,072.
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

name = sys.argv[2]
tokens, vocab, repeats, hidden_size = (int(a) for a in sys.argv[3:7])

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
if name.startswith("triton "):
    from evalkit.train.kernels import triton_losses as tk
    LOSSES.update({
        "triton ce": tk.ce_loss,
        "triton gem linear": lambda z, y: tk.gem_loss(z, y, beta=0.7, h="linear"),
        "triton gem logsigmoid": lambda z, y: tk.gem_loss(z, y, beta=0.7, h="logsigmoid"),
        "triton tofu": lambda z, y: tk.tofu_loss(z, y, beta=0.8, gamma=3.0),
        "triton focal": lambda z, y: tk.focal_loss(z, y, gamma=2.0),
        "triton ce_entropy": lambda z, y: tk.ce_entropy_loss(z, y, lam=0.1),
    })
if name.startswith("fused "):
    from evalkit.train.fused_linear import fused_linear_loss
    from evalkit.train.loss_spec import LossSpec
    SPECS = {
        "fused ce": LossSpec.for_loss("ce"),
        "fused gem linear": LossSpec.for_loss("gem", beta=0.7),
        "fused gem logsigmoid": LossSpec.for_loss("gem", beta=0.7, h="logsigmoid"),
        "fused tofu": LossSpec.for_loss("tofu", beta=0.8, gamma=3.0),
        "fused focal": LossSpec.for_loss("focal", gamma=2.0),
        "fused ce_entropy": LossSpec.for_loss("ce_entropy", lam=0.1),
    }
device = "cuda" if torch.cuda.is_available() else "cpu"
dtype = torch.bfloat16 if device == "cuda" else torch.float32
torch.manual_seed(0)
batch = 2
labels = torch.randint(0, vocab, (batch, tokens // batch), device=device)
labels[:, : tokens // 8] = -100  # a masked prompt

if hidden_size:  # LM head + loss: inputs are the hidden states and the head's weight
    hidden = torch.randn(batch, tokens // batch, hidden_size, device=device, dtype=dtype)
    weight = torch.randn(vocab, hidden_size, device=device, dtype=dtype).div_(hidden_size**0.5)  # no transient copy
    inputs = (hidden, weight)
    if name == "head + ce (transformers)":
        fn = lambda h, w, y: transformers_ce(h @ w.T, y)
    else:
        spec = SPECS[name]
        fn = lambda h, w, y: fused_linear_loss(h, w, y, spec)
else:
    inputs = (torch.randn(batch, tokens // batch, vocab, device=device, dtype=dtype),)
    fn = lambda z, y: LOSSES[name](z, y)

def step():
    xs = [x.detach().requires_grad_(True) for x in inputs]
    fn(*xs, labels).backward()
    return [x.grad for x in xs]

if device == "cuda":
    step()  # warm-up: CUDA context, cuBLAS, Triton compilation
    torch.cuda.synchronize(); torch.cuda.empty_cache(); torch.cuda.reset_peak_memory_stats()
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
                  "gpu": torch.cuda.get_device_name() if device == "cuda" else None,
                  "input_bytes": sum(x.numel() * x.element_size() for x in inputs)}))
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
TRITON_NAMES = [
    "triton ce",
    "triton gem linear",
    "triton gem logsigmoid",
    "triton tofu",
    "triton focal",
    "triton ce_entropy",
]
FUSED_NAMES = [
    "head + ce (transformers)",
    "fused ce",
    "fused gem linear",
    "fused gem logsigmoid",
    "fused tofu",
    "fused focal",
    "fused ce_entropy",
]


def measure(name: str, tokens: int, vocab: int, repeats: int, hidden: int = 0) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(REPO), name, str(tokens), str(vocab), str(repeats), str(hidden)],
        capture_output=True,
        text=True,
    )
    if out.returncode != 0:
        raise SystemExit(f"{name} (V = {vocab}) failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _row(name: str, r: dict, base: dict, extra: str = "") -> str:
    return (
        f"{name:<26}{r['peak_bytes'] / 2**20:>10.0f}{r['peak_bytes'] / base['peak_bytes']:>10.2f}{extra}"
        f"{1000 * r['seconds']:>10.1f}{r['seconds'] / base['seconds']:>11.2f}"
    )


def logits_table(tokens: int, vocab: int, repeats: int, gpu: bool) -> None:
    names = NAMES + (TRITON_NAMES if gpu else [])
    rows = {name: measure(name, tokens, vocab, repeats) for name in names}
    base = rows["ce (transformers)"]
    device = base["gpu"] or base["device"]
    print(f"\nV = {vocab}, {tokens} tokens, {device}; logits {base['input_bytes'] / 2**20:.0f} MiB")
    print(f"{'loss':<26}{'peak MiB':>10}{'x CE mem':>10}{'x Listing1':>12}{'ms':>10}{'x CE time':>11}")
    for name, r in rows.items():
        listing = rows["listing1 log_sigmoid" if "sigmoid" in name else "listing1 linear"]
        print(_row(name, r, base, f"{r['peak_bytes'] / listing['peak_bytes']:>12.2f}"))


def fused_table(tokens: int, vocab: int, repeats: int, hidden: int) -> None:
    rows = {name: measure(name, tokens, vocab, repeats, hidden) for name in FUSED_NAMES}
    base = rows["head + ce (transformers)"]
    device = base["gpu"] or base["device"]
    print(f"\nLM head + loss: V = {vocab}, H = {hidden}, {tokens} tokens, {device}")
    print(f"{'loss':<26}{'peak MiB':>10}{'x mem':>10}{'ms':>10}{'x time':>11}   (x: of LM head + CE)")
    for name, r in rows.items():
        print(_row(name, r, base))


def main() -> None:
    import torch

    gpu = torch.cuda.is_available()
    parser = argparse.ArgumentParser()
    parser.add_argument("--tokens", type=int, default=16384 if gpu else 512)
    parser.add_argument("--vocab", type=int, nargs="+", default=[32768, 131072, 262144] if gpu else [32768, 131072])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--fused-linear", action="store_true", help="also the LM head + loss table")
    parser.add_argument("--hidden", type=int, default=4096, help="hidden size of the --fused-linear table")
    parser.add_argument("--no-logits", action="store_true", help="skip the table of losses on logits")
    args = parser.parse_args()
    for vocab in args.vocab:
        if not args.no_logits:
            logits_table(args.tokens, vocab, args.repeats, gpu)
        if args.fused_linear:
            fused_table(args.tokens, vocab, args.repeats, args.hidden)


if __name__ == "__main__":
    main()
