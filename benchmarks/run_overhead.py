"""Overhead of `evalkit run` over bare `model.generate`, the cost of a repeated run, and (with
--throughput) generated tokens/s of evalkit's transformers backend against bare `model.generate`.

Every side runs as a fresh process on the same machine, in the same invocation of this script,
the sides alternating. Smoke mode (the default):
  evalkit : `python -m evalkit run --suite smoke --no-cache --device D --batch-size 64` (imports,
            model load, prompts, per-sample seeded sampling, scoring, result files);
  baseline: the same command run from another checkout (``--baseline-tree PATH``, for example
            the main branch's worktree), to compare two versions of evalkit in one invocation;
  bare    : a script that imports transformers, loads the same converted model on the same
            device in the same dtype (float32 on CPU, bfloat16 on CUDA), renders the same prompts
            with the same chat template and calls `model.generate` in the same batches
            (num_return_sequences=n, transformers' own sampling, same temperature/top-k/top-p/
            max tokens), then decodes. No scoring, no files.
  repeat  : `evalkit run --suite smoke` twice on one fresh cache; the second is served from it.
Prints the median wall times and the ratios evalkit/bare (target <= 1.15 on CPU, <= 1.0 on
CUDA) and repeat/first (target < 0.05).

Throughput mode (``--throughput``): --prompts P x --samples N x at most --max-tokens M new
tokens (64 x 16 x 512 by default), temperature 1, no top-k/top-p. The evalkit side times
`HFBackend.generate_samples` (``--batch-size`` sequences per call, or what the free GPU memory
holds when it is not given); the bare side times `model.generate` with num_return_sequences=N,
``--bare-batch-size`` sequences per call. Model loading is outside the timed part on both sides.
Each side counts the new tokens its sequences generated, up to and including the end-of-sequence
token; prints tokens/s of both and their ratio (target on a GPU: evalkit >= 2x bare).

Any failing subprocess has its stderr printed. Usage:
  python benchmarks/run_overhead.py [--device cpu|cuda] [--repeats 2] [--baseline-tree PATH]
  python benchmarks/run_overhead.py --throughput [--device cuda] [--prompts 64 --samples 16 --max-tokens 512]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[1]

BARE = r"""
import json, sys, time, torch
from transformers import AutoModelForCausalLM, AutoTokenizer
spec = json.load(open(sys.argv[1]))
device, dtype = spec["device"], getattr(torch, spec["dtype"])
tok = AutoTokenizer.from_pretrained(spec["model"]); tok.padding_side = "left"
model = AutoModelForCausalLM.from_pretrained(spec["model"], dtype=dtype).to(device).eval()
eos = model.generation_config.eos_token_id
eos = set(eos if isinstance(eos, list) else [eos]) | {tok.pad_token_id}
torch.manual_seed(0)
tokens, started = 0, time.perf_counter()
for task in spec["tasks"]:
    s = task["sampling"]
    prompts = [tok.apply_chat_template(m, tokenize=False, add_generation_prompt=True) for m in task["chats"]]
    per_call = max(1, spec["batch_size"] // s["n"])
    for i in range(0, len(prompts), per_call):
        enc = tok(prompts[i:i + per_call], return_tensors="pt", padding=True, add_special_tokens=False).to(device)
        with torch.inference_mode():
            out = model.generate(**enc, do_sample=True, temperature=s["temperature"], top_k=s["top_k"],
                                 top_p=s["top_p"], num_return_sequences=s["n"], max_new_tokens=s["max_tokens"],
                                 pad_token_id=tok.pad_token_id)
        new = out[:, enc["input_ids"].shape[1]:]
        tok.batch_decode(new, skip_special_tokens=True)
        for row in new.tolist():
            tokens += next((j + 1 for j, t in enumerate(row) if t in eos), len(row))
if device.startswith("cuda"):
    torch.cuda.synchronize()
print(json.dumps({"tokens": tokens, "seconds": time.perf_counter() - started}))
"""

OURS = r"""
import json, sys, time, torch
from evalkit.backends.base import PromptBatch
from evalkit.backends.hf import HFBackend
from evalkit.config import SamplingConfig
spec = json.load(open(sys.argv[1]))
backend = HFBackend(None, device=spec["device"], batch_size=spec["evalkit_batch_size"])
backend.tokenizer, backend.model
tokens, started = 0, time.perf_counter()
for task in spec["tasks"]:
    s = task["sampling"]
    sampling = SamplingConfig(n=s["n"], temperature=s["temperature"], top_p=s["top_p"], top_k=s["top_k"],
                              max_tokens=s["max_tokens"], seed=1234)
    prompts = [backend.render(m) for m in task["chats"]]
    for row in backend.generate_samples(PromptBatch(prompts, sampling)):
        tokens += sum(x.tokens or 0 for x in row)
if spec["device"].startswith("cuda"):
    torch.cuda.synchronize()
print(json.dumps({"tokens": tokens, "seconds": time.perf_counter() - started}))
"""

TOPICS = "rain,the sea,a lighthouse,autumn,a city at night,bread,an old clock,snow,a fox,the moon,trains,a garden"
KINDS = "poem,short story,limerick,song,letter"


def run(cmd: list[str], tree: Path = REPO) -> tuple[float, str]:
    """Wall time and stdout of a subprocess that imports evalkit from ``tree`` (its working folder
    and PYTHONPATH: `python -m` and `-c` put the working folder first on sys.path); on failure its
    stderr is printed and the script exits."""
    start = time.perf_counter()
    env = {**os.environ, "PYTHONPATH": str(tree)}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tree)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        print(f"FAILED (exit {done.returncode}): {' '.join(cmd[:6])} ...", file=sys.stderr)
        print(done.stderr[-6000:], file=sys.stderr)
        sys.exit(1)
    return elapsed, done.stdout


def smoke_spec(path: Path, batch_size: int, device: str) -> None:
    from evalkit.config import RunConfig
    from evalkit.embedded import default_model_dir
    from evalkit.runner import prepare
    from evalkit.tasks import render_messages

    tasks = prepare(RunConfig(model=None, tasks=(), suite="smoke"))
    tasks_json = [
        {
            "chats": [render_messages(t.spec, d) for d in t.docs],
            "sampling": {k: getattr(t.sampling, k) for k in ("n", "temperature", "top_k", "top_p", "max_tokens")},
        }
        for t in tasks
    ]
    write_spec(path, str(default_model_dir()), device, batch_size, None, tasks_json)


def throughput_spec(path: Path, args: argparse.Namespace) -> None:
    from evalkit.embedded import default_model_dir

    kinds, topics = KINDS.split(","), TOPICS.split(",")
    pairs = [(k, t) for k in kinds for t in topics]
    chats = [[{"role": "user", "content": f"Write a {k} about {t}."}] for k, t in pairs[: args.prompts]]
    while len(chats) < args.prompts:  # more prompts than pairs: numbered variants
        k, t = pairs[len(chats) % len(pairs)]
        chats.append([{"role": "user", "content": f"Write a {k} about {t}, number {len(chats)}."}])
    sampling = {"n": args.samples, "temperature": 1.0, "top_k": 0, "top_p": 1.0, "max_tokens": args.max_tokens}
    bare_batch = args.bare_batch_size or (1024 if args.device.startswith("cuda") else 64)
    tasks = [{"chats": chats, "sampling": sampling}]
    write_spec(path, str(default_model_dir()), args.device, bare_batch, args.batch_size, tasks)


def write_spec(path: Path, model: str, device: str, bare_batch: int, ours_batch: int | None, tasks: list) -> None:
    dtype = "bfloat16" if device.startswith("cuda") else "float32"
    spec = {"model": model, "device": device, "dtype": dtype, "batch_size": bare_batch}
    spec.update(evalkit_batch_size=ours_batch, tasks=tasks)
    path.write_text(json.dumps(spec))


def smoke(args: argparse.Namespace, tmp: Path) -> None:
    spec = tmp / "spec.json"
    smoke_spec(spec, batch_size=64, device=args.device)
    command = [sys.executable, "-m", "evalkit", "run", "--suite", "smoke", "--quiet", "--batch-size", "64"]
    command += ["--device", args.device, "--output-dir", str(tmp / "out")]
    sides: dict[str, list[float]] = {"evalkit": [], "bare": []}
    if args.baseline_tree:
        sides["baseline"] = []
    for _ in range(args.repeats):  # alternate so all sides see the same machine state
        sides["evalkit"].append(run([*command, "--no-cache"], REPO)[0])
        if args.baseline_tree:
            sides["baseline"].append(run([*command, "--no-cache"], args.baseline_tree.resolve())[0])
        sides["bare"].append(run([sys.executable, "-c", BARE, str(spec)])[0])
        print("  " + ", ".join(f"{name} {times[-1]:.2f} s" for name, times in sides.items()), flush=True)
    if not args.skip_repeat:
        first = run([*command, "--cache-dir", str(tmp / "cache")], REPO)[0]
        repeat = run([*command, "--cache-dir", str(tmp / "cache")], REPO)[0]
    medians = {name: statistics.median(times) for name, times in sides.items()}
    target = "1.0" if args.device.startswith("cuda") else "1.15"
    print(f"device {args.device}, {args.repeats} repeats alternating, medians")
    for name, times in sides.items():
        print(f"{name:9s}: {medians[name]:7.2f} s  (runs: {', '.join(f'{x:.2f}' for x in times)})")
    print(f"overhead ratio evalkit/bare: {medians['evalkit'] / medians['bare']:.3f}  (target <= {target})")
    if args.baseline_tree:
        print(f"overhead ratio baseline/bare: {medians['baseline'] / medians['bare']:.3f}  ({args.baseline_tree})")
        print(f"evalkit/baseline: {medians['evalkit'] / medians['baseline']:.3f}")
    if not args.skip_repeat:
        print(f"first run {first:.2f} s, repeated run {repeat:.2f} s: ratio {repeat / first:.3f}  (target < 0.05)")


def throughput(args: argparse.Namespace, tmp: Path) -> None:
    spec = tmp / "spec.json"
    throughput_spec(spec, args)
    rates: dict[str, list[float]] = {"evalkit": [], "bare": []}
    for _ in range(args.repeats):
        for name, script in (("evalkit", OURS), ("bare", BARE)):
            _, out = run([sys.executable, "-c", script, str(spec)], REPO)
            measured = json.loads(out.strip().splitlines()[-1])
            rates[name].append(measured["tokens"] / measured["seconds"])
            print(f"{name:8s}: {measured['tokens']} tokens in {measured['seconds']:.2f} s", flush=True)
    ours, bare = statistics.median(rates["evalkit"]), statistics.median(rates["bare"])
    print(f"device {args.device}: {args.prompts} prompts x {args.samples} samples x <= {args.max_tokens} tokens")
    print(f"evalkit: {ours:9.1f} tokens/s  (runs: {', '.join(f'{x:.1f}' for x in rates['evalkit'])})")
    print(f"bare:    {bare:9.1f} tokens/s  (runs: {', '.join(f'{x:.1f}' for x in rates['bare'])})")
    print(f"ratio evalkit/bare tokens/s: {ours / bare:.3f}  (target on a GPU >= 2)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu or cuda (both sides run there; bf16 on CUDA)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--baseline-tree", type=Path, default=None, help="another evalkit checkout to time too")
    parser.add_argument("--skip-repeat", action="store_true", help="leave out the repeated run from the cache")
    parser.add_argument("--throughput", action="store_true", help="tokens/s on a bigger workload")
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--samples", type=int, default=16)
    parser.add_argument("--max-tokens", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=None, help="evalkit's; default: from free GPU memory")
    parser.add_argument("--bare-batch-size", type=int, default=None, help="sequences per bare call (1024 / 64)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        (throughput if args.throughput else smoke)(args, Path(tmp))


if __name__ == "__main__":
    main()
