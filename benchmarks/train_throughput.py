"""`evalkit train` against a plain transformers Trainer with its own CE: tokens/s and peak memory.

Both sides train the same model on the same tokenised examples (evalkit's chat formatting, prompt
masked) with the same batch size, max length, epochs, optimiser settings, precision (bf16 on a
GPU, float32 on CPU) and gradient checkpointing (on with a GPU, as `evalkit train` defaults), each
in a fresh process, the sides alternating, in one invocation:

* evalkit: `evalkit.train.trainer.train`, what `evalkit train --loss LOSS` runs, on the loss path
  it chooses by default (the fused LM head + loss on a GPU; torch on CPU).
* plain: `transformers.Trainer` on the model with the labels in the batch, so the model computes
  its own CE (transformers' ForCausalLMLoss) and nothing else is added.

tokens/s: the non-pad tokens of all examples times the epochs over the wall time of
`Trainer.train` (the training loop, timed the same way on both sides by wrapping the method both
Trainers inherit; model loading, evalkit's fixed-set losses before and after, and saving the
checkpoint are outside it; both sides save). Tokens per CPU second (all threads of the process,
same scope) are printed too: on a shared CPU machine they move less with other jobs than wall
time does. Peak memory: on a GPU `torch.cuda.max_memory_allocated` over the run,
model included; on CPU the growth of the process's peak RSS from before the model is loaded. On a
GPU each process first runs a 3-step warm-up (CUDA context, cuBLAS, Triton compilation) whose
time and memory are not counted.

Target (GPU, issue 20): evalkit --loss gem >= 0.95x the plain Trainer's tokens/s, at no more peak
memory.

Usage: python benchmarks/train_throughput.py [--loss gem] [--examples N] [--batch-size B]
       [--max-length L] [--epochs E] [--repeats R] [--model PATH]
       [--loss-path auto|fused-linear|triton|torch]
Defaults: CPU 12 examples, batch 4, max length 128, 3 repeats (a 2-core CPU trains SmolLM2-135M
at a few dozen tokens/s); GPU 2,000 examples, batch 16, max length 512 (the setting of issue 20),
1 repeat.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DATA = REPO.parent / "shared" / "data" / "alpaca" / "alpaca_data.json"


def _config(opts: argparse.Namespace, output_dir: str, loss: str, max_steps: int):
    from evalkit.train.config import TrainConfig

    return TrainConfig(
        model=opts.model,
        data=opts.data,
        output_dir=Path(output_dir),
        loss=loss,
        limit=opts.examples,
        max_length=opts.max_length,
        epochs=opts.epochs,
        max_steps=max_steps,
        batch_size=opts.batch_size,
        learning_rate=2e-5,
        loss_path=opts.loss_path,
        seed=1,
    )


def _plain_trainer_run(config) -> None:
    """A plain Trainer with the model's own CE; the TrainingArguments are those `train` builds."""
    from functools import partial

    import torch
    from transformers import Trainer, TrainingArguments, set_seed

    from evalkit.train.sft_data import collate
    from evalkit.train.trainer import _load_model, prepare_examples

    use_cuda = torch.cuda.is_available()
    set_seed(config.seed)
    _, model, tokenizer = _load_model(config, use_cuda)
    examples, _ = prepare_examples(config, tokenizer)
    args = TrainingArguments(
        output_dir=str(config.output_dir),
        num_train_epochs=config.epochs,
        max_steps=config.max_steps,
        learning_rate=config.learning_rate,
        lr_scheduler_type=config.scheduler,
        warmup_steps=config.warmup_ratio,
        per_device_train_batch_size=config.batch_size,
        gradient_accumulation_steps=config.grad_accum,
        weight_decay=config.weight_decay,
        bf16=use_cuda and torch.cuda.is_bf16_supported(),
        gradient_checkpointing=use_cuda,
        logging_steps=config.logging_steps,
        save_strategy="no",
        use_cpu=not use_cuda,
        seed=config.seed,
        report_to=[],
        remove_unused_columns=False,
        disable_tqdm=True,
    )
    trainer = Trainer(
        model=model, args=args, train_dataset=examples, data_collator=partial(collate, pad_id=tokenizer.pad_token_id)
    )
    trainer.train()
    trainer.save_model()  # as `evalkit train` saves its checkpoint (outside the timed loop on both sides)


def _time_trainer_loops() -> list[tuple[float, float]]:
    """Wrap Trainer.train (both sides' Trainers inherit it) to record each call's wall and CPU seconds.

    CPU seconds (all threads of the process) move less than wall time when other jobs share the
    machine's cores; on a GPU they mean little and only the wall time is reported."""
    import resource
    import time

    from transformers import Trainer

    loops: list[tuple[float, float]] = []
    original = Trainer.train

    def cpu_seconds() -> float:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime

    def timed(self, *args, **kwargs):
        wall, cpu = time.perf_counter(), cpu_seconds()
        result = original(self, *args, **kwargs)
        if torch_cuda_sync is not None:
            torch_cuda_sync()
        loops.append((time.perf_counter() - wall, cpu_seconds() - cpu))
        return result

    import torch

    torch_cuda_sync = torch.cuda.synchronize if torch.cuda.is_available() else None
    Trainer.train = timed
    return loops


def child(side: str, opts: argparse.Namespace) -> dict:
    import gc
    import resource

    import torch
    from transformers import AutoTokenizer

    from evalkit.backends.hf import resolve_model
    from evalkit.train.trainer import prepare_examples, train

    cuda = torch.cuda.is_available()
    loss = opts.loss if side == "evalkit" else "ce"
    loops = _time_trainer_loops()

    def run(max_steps: int) -> str:
        with tempfile.TemporaryDirectory(prefix="train-throughput-") as out:
            config = _config(opts, out, loss, max_steps)
            if side == "evalkit":
                return train(config)["loss_path"]
            _plain_trainer_run(config)
            return "model's own CE"

    if cuda:
        run(3)  # warm-up, not counted
        gc.collect()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
    else:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    path = run(-1)
    if cuda:
        peak = torch.cuda.max_memory_allocated() - before
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before
    wall, cpu = loops[-1]
    _, source = resolve_model(opts.model)
    examples, _ = prepare_examples(_config(opts, "unused", loss, -1), AutoTokenizer.from_pretrained(source))
    tokens = sum(len(e.input_ids) for e in examples) * opts.epochs
    device = torch.cuda.get_device_name() if cuda else "CPU"
    return {"tokens": tokens, "seconds": wall, "cpu_seconds": cpu, "peak_bytes": peak, "device": device, "path": path}


def _measure(side: str, opts: argparse.Namespace) -> dict:
    command = [sys.executable, __file__, "--child", side, "--loss", opts.loss, "--data", opts.data]
    command += ["--loss-path", opts.loss_path]
    command += ["--examples", str(opts.examples), "--batch-size", str(opts.batch_size)]
    command += ["--max-length", str(opts.max_length), "--epochs", str(opts.epochs)]
    command += ["--model", opts.model] if opts.model else []
    out = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
    if out.returncode != 0:
        raise SystemExit(f"{side} run failed:\n{out.stderr[-4000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--loss", default="gem")
    parser.add_argument("--loss-path", default="auto", help="evalkit's --loss-path (default: what it chooses)")
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--model", default=None, help="default: the embedded SmolLM2-135M-Instruct")
    parser.add_argument("--examples", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--max-length", type=int, default=None)
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--child", choices=["evalkit", "plain"], help=argparse.SUPPRESS)
    opts = parser.parse_args()
    sys.path.insert(0, str(REPO))
    if opts.child:
        print(json.dumps(child(opts.child, opts)))
        return
    import torch

    gpu = torch.cuda.is_available()
    opts.examples = opts.examples or (2000 if gpu else 12)
    opts.batch_size = opts.batch_size or (16 if gpu else 4)
    opts.max_length = opts.max_length or (512 if gpu else 128)
    opts.repeats = opts.repeats or (1 if gpu else 3)
    runs: dict[str, list[dict]] = {"evalkit": [], "plain": []}
    for _ in range(opts.repeats):
        for side in runs:
            runs[side].append(_measure(side, opts))
    first = runs["evalkit"][0]
    print(
        f"{first['device']}; {opts.examples} examples x {opts.epochs:g} epoch(s), batch {opts.batch_size}, "
        f"max length {opts.max_length}, {first['tokens']:.0f} tokens; evalkit --loss {opts.loss} "
        f"({first['path']} path) against a plain Trainer with the model's CE; medians of {opts.repeats}"
    )
    summary = {}
    print(f"{'side':<10}{'tokens/s':>10}{'train s':>9}{'tok/CPU s':>11}{'peak MiB':>10}   runs (tokens/s)")
    for side, rows in runs.items():
        rates = [r["tokens"] / r["seconds"] for r in rows]
        per_cpu = statistics.median(r["tokens"] / r["cpu_seconds"] for r in rows)
        summary[side] = (statistics.median(rates), statistics.median(r["peak_bytes"] for r in rows), per_cpu)
        seconds = statistics.median(r["seconds"] for r in rows)
        listed = ", ".join(f"{x:.1f}" for x in rates)
        print(
            f"{side:<10}{summary[side][0]:>10.1f}{seconds:>9.2f}{per_cpu:>11.1f}"
            f"{summary[side][1] / 2**20:>10.0f}   {listed}"
        )
    ratio = summary["evalkit"][0] / summary["plain"][0]
    paired = statistics.median(
        (e["tokens"] / e["seconds"]) / (p["tokens"] / p["seconds"]) for e, p in zip(runs["evalkit"], runs["plain"])
    )
    print(
        f"ratio evalkit / plain: tokens/s {ratio:.3f} (median of the paired runs {paired:.3f}), "
        f"tokens per CPU second {summary['evalkit'][2] / summary['plain'][2]:.3f}, "
        f"peak memory {summary['evalkit'][1] / summary['plain'][1]:.3f}"
    )


if __name__ == "__main__":
    main()
