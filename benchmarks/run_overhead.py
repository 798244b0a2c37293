"""Overhead of `evalkit run` over bare `model.generate`, and the cost of a repeated run.

Both sides run as fresh processes on the same machine, in the same invocation of this script:
  evalkit : `python -m evalkit run --suite smoke --no-cache` (imports, model load, prompts,
            per-sample seeded sampling, scoring, result files);
  bare    : a script that imports transformers, loads the same converted model, renders the same
            prompts with the same chat template and calls `model.generate` in the same batches
            (num_return_sequences=n, transformers' own sampling, same temperature/top-k/top-p/
            max tokens), then decodes. No scoring, no files.
  repeat  : `evalkit run --suite smoke` twice on one fresh cache; the second is served from it.

Prints the median wall times and the ratios evalkit/bare (target <= 1.15) and repeat/first
(target < 0.05). Usage: python benchmarks/run_overhead.py [--repeats 2]
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

BARE = r"""
import json, sys, torch
from transformers import AutoModelForCausalLM, AutoTokenizer
spec = json.load(open(sys.argv[1]))
tok = AutoTokenizer.from_pretrained(spec["model"]); tok.padding_side = "left"
model = AutoModelForCausalLM.from_pretrained(spec["model"], dtype=torch.float32).eval()
torch.manual_seed(0)
for task in spec["tasks"]:
    s = task["sampling"]
    prompts = [tok.apply_chat_template(m, tokenize=False, add_generation_prompt=True) for m in task["chats"]]
    per_call = max(1, spec["batch_size"] // s["n"])
    for i in range(0, len(prompts), per_call):
        enc = tok(prompts[i:i + per_call], return_tensors="pt", padding=True, add_special_tokens=False)
        with torch.inference_mode():
            out = model.generate(**enc, do_sample=True, temperature=s["temperature"], top_k=s["top_k"] or None,
                                 top_p=s["top_p"], num_return_sequences=s["n"], max_new_tokens=s["max_tokens"],
                                 pad_token_id=tok.pad_token_id)
        tok.batch_decode(out[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
"""


def timed(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def bare_spec(path: Path, batch_size: int) -> None:
    from evalkit.config import RunConfig
    from evalkit.embedded import default_model_dir
    from evalkit.runner import prepare
    from evalkit.tasks import render_messages

    tasks = prepare(RunConfig(model=None, tasks=(), suite="smoke"))
    spec = {
        "model": str(default_model_dir()),
        "batch_size": batch_size,
        "tasks": [
            {
                "chats": [render_messages(t.spec, d) for d in t.docs],
                "sampling": {k: getattr(t.sampling, k) for k in ("n", "temperature", "top_k", "top_p", "max_tokens")},
            }
            for t in tasks
        ],
    }
    path.write_text(json.dumps(spec))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        spec = tmp_path / "spec.json"
        bare_spec(spec, batch_size=64)
        evalkit_cmd = [
            sys.executable,
            "-m",
            "evalkit",
            "run",
            "--suite",
            "smoke",
            "--quiet",
            "--batch-size",
            "64",
            "--output-dir",
            str(tmp_path / "out"),
        ]
        ours, bare = [], []
        for _ in range(args.repeats):  # alternate so both sides see the same machine state
            ours.append(timed([*evalkit_cmd, "--no-cache"]))
            bare.append(timed([sys.executable, "-c", BARE, str(spec)]))
        first = timed([*evalkit_cmd, "--cache-dir", str(tmp_path / "cache")])
        repeat = timed([*evalkit_cmd, "--cache-dir", str(tmp_path / "cache")])
    o, b = statistics.median(ours), statistics.median(bare)
    print(f"evalkit run (no cache): {o:7.2f} s  (runs: {', '.join(f'{x:.2f}' for x in ours)})")
    print(f"bare model.generate:    {b:7.2f} s  (runs: {', '.join(f'{x:.2f}' for x in bare)})")
    print(f"overhead ratio evalkit/bare: {o / b:.3f}  (target <= 1.15)")
    print(f"first run {first:.2f} s, repeated run {repeat:.2f} s: ratio {repeat / first:.3f}  (target < 0.05)")


if __name__ == "__main__":
    main()
