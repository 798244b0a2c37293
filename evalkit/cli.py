"""The `evalkit` command line. Exit codes: 0 success, 1 a check found a regression, 2 bad input."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

import click

from evalkit import api
from evalkit.cli_run_options import run_options
from evalkit.diagnostics.distance import checkpoint_distance
from evalkit.diagnostics.next_token import next_token_distribution, plot_next_tokens
from evalkit.errors import EvalkitError
from evalkit.loggers import TARGETS
from evalkit.metrics.multiple import CORRECTIONS
from evalkit.report import render_report, write_report
from evalkit.results import json_safe
from evalkit.serve import ServeConfig
from evalkit.serve import serve as serve_model
from evalkit.serve_limits import ServeLimits
from evalkit.summary import print_comparison, print_findings, print_summary, print_task_list
from evalkit.tasks import suites, task_registry

_SERVE_LIMITS = ServeLimits()  # the defaults of `evalkit serve`'s limits


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="evalkit")
def cli() -> None:
    """Measure how good and how diverse a language model's outputs are."""


@cli.command()
@run_options
def run(**opts: Any) -> None:
    """Generate samples for tasks and score them; writes OUTPUT_DIR/RUN_ID/results.json."""
    print_summary(api.evaluate(**opts))


@cli.command(name="list")
@click.option(
    "--task-dir", "task_dirs", multiple=True, type=click.Path(path_type=Path), help="Folder of extra task YAML files."
)
@click.option(
    "--override-tasks", is_flag=True, help="A --task-dir file may replace the built-in task of the same name."
)
def list_tasks(task_dirs: tuple[Path, ...], override_tasks: bool) -> None:
    """List tasks and suites."""
    registry = task_registry(*task_dirs, override=override_tasks)
    print_task_list([registry.get(n) for n in registry.names()], suites(registry))


@cli.command()
@click.argument("runs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the rows as JSON instead of a table.")
@click.option("--confidence", type=click.FloatRange(0.5, 0.999), default=0.95, show_default=True)
@click.option("--bootstrap-seed", type=int, default=0, show_default=True)
@click.option(
    "--correction",
    type=click.Choice(CORRECTIONS),
    default="holm",
    show_default=True,
    help="Correction of the verdicts for the number of metrics compared.",
)
@click.option(
    "--allow-mismatch", is_flag=True, help="Compare runs that measured different things (shown in the table)."
)
def compare(runs: tuple[Path, ...], as_json: bool, **opts: Any) -> None:
    """Compare runs against the first: values, deltas and paired-bootstrap CIs over the documents
    both scored, and verdicts corrected for the number of metrics compared."""
    if len(runs) < 2:
        raise EvalkitError("compare needs at least two runs")
    comparison = api.compare(*runs, **opts)
    if as_json:
        click.echo(json.dumps(json_safe(comparison.to_json()), indent=2))
    else:
        print_comparison(comparison)


@cli.command()
@click.argument("run", type=click.Path(path_type=Path))
@click.option("--baseline", required=True, type=click.Path(path_type=Path), help="Run or results file to gate against.")
@click.option("--policy", type=click.Path(path_type=Path), default=None, help="YAML file of per-metric tolerances.")
@click.option("--max-drop", type=click.FloatRange(min=0), default=None, help="Default absolute tolerance.")
@click.option(
    "--max-relative-drop", type=click.FloatRange(min=0), default=None, help="Default tolerance as a fraction."
)
@click.option("--metric", multiple=True, help="Gate only this metric (repeatable).")
@click.option("--require-significance", is_flag=True, help="A drop must also be significant (paired bootstrap).")
@click.option(
    "--correction",
    type=click.Choice(CORRECTIONS),
    default=None,
    help="With --require-significance: correction over the gated metrics (default: the policy's, else holm).",
)
@click.option("--allow-mismatch", is_flag=True, help="Gate against a baseline that measured different things.")
@click.option("--json", "as_json", is_flag=True, help="Print the findings as JSON.")
@click.pass_context
def check(ctx: click.Context, run: Path, baseline: Path, as_json: bool, **opts: Any) -> None:
    """Gate a run against a baseline: exit 0 within bounds, 1 on a regression, 2 on bad input."""
    outcome = api.check(run, baseline, **opts)
    if as_json:
        click.echo(json.dumps([dataclasses.asdict(f) for f in outcome.findings], indent=2))
    else:
        print_findings(outcome)
    if not outcome.passed:
        ctx.exit(1)


@cli.command()
@click.argument("runs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("-o", "--output", required=True, type=click.Path(path_type=Path), help="HTML file to write.")
@click.option("--samples-per-task", type=click.IntRange(min=0), default=3, show_default=True)
@click.option("--samples-per-doc", type=click.IntRange(min=1), default=2, show_default=True)
@click.option("--diversity-metric", default=None, help="x axis of diversity vs quality (default: ngram_diversity...).")
@click.option("--quality-metric", default=None, help="y axis of diversity vs quality (default: accuracy, pass@1, ...).")
def report(runs: tuple[Path, ...], output: Path, **opts: Any) -> None:
    """Write one self-contained HTML page with metric tables, curves and sample outputs."""
    if output.is_dir():
        raise EvalkitError(f"-o {output} is a folder; give a file name such as report.html")
    loaded = api.report_runs(runs)
    html = render_report(loaded, **opts)
    write_report(output, html)
    click.echo(f"report: {output} ({len(loaded)} runs, {len(html) // 1024} KiB)")


@cli.command()
@click.option("--model", default=None, help="Base model: folder or hub id (default: the embedded SmolLM2).")
@click.option("--data", required=True, help="SFT data: a .json/.jsonl/.csv file or a hub dataset id.")
@click.option("--output-dir", required=True, type=click.Path(path_type=Path), help="Checkpoint folder to write.")
@click.option("--loss", default="gem", show_default=True, help="ce, gem, tofu, focal or ce_entropy.")
@click.option("--beta", type=float, default=None, help="GEM/TOFU temperature (default 0.7 GEM, 0.8 TOFU).")
@click.option("--h", "h", default="linear", show_default=True, help="GEM's h: linear or logsigmoid.")
@click.option("--gamma", type=float, default=None, help="TOFU/focal gamma (default 3 TOFU, 2 focal).")
@click.option("--entropy-lambda", type=float, default=0.1, show_default=True, help="ce_entropy's lambda.")
@click.option(
    "--loss-path",
    type=click.Choice(["auto", "fused-linear", "triton", "torch"]),
    default="auto",
    show_default=True,
    help="auto: LM head fused with the loss on a GPU when the model allows it (triton, torch: on the logits).",
)
@click.option("--split", default="train", show_default=True, help="Hub split of --data.")
@click.option("--limit", type=int, default=None, help="Train on the first N examples.")
@click.option("--max-length", type=int, default=2048, show_default=True)
@click.option("--epochs", type=float, default=3.0, show_default=True)
@click.option("--max-steps", type=int, default=-1, help="Stop after N optimiser steps (overrides --epochs).")
@click.option("--lr", "learning_rate", type=float, default=2e-5, show_default=True)
@click.option("--scheduler", default="cosine", show_default=True)
@click.option("--warmup-ratio", type=float, default=0.03, show_default=True)
@click.option("--batch-size", type=int, default=8, show_default=True, help="Per device.")
@click.option("--grad-accum", type=int, default=1, show_default=True)
@click.option("--weight-decay", type=float, default=0.0, show_default=True)
@click.option("--neftune-alpha", type=float, default=None, help="NEFTune noise scale (off by default).")
@click.option("--lora", is_flag=True, help="Train LoRA adapters (merged into the saved checkpoint).")
@click.option("--qlora", is_flag=True, help="LoRA on a 4-bit base (CUDA only).")
@click.option("--lora-r", type=int, default=16, show_default=True)
@click.option("--bf16/--no-bf16", default=None, help="Default: on when the GPU supports it.")
@click.option("--gradient-checkpointing/--no-gradient-checkpointing", default=None, help="Default: on with a GPU.")
@click.option("--deepspeed", type=click.Path(path_type=Path), default=None, help="DeepSpeed JSON config.")
@click.option("--logging-steps", type=int, default=10, show_default=True)
@click.option("--save-steps", type=int, default=0, help="Intermediate checkpoints every N steps (0: final only).")
@click.option(
    "--fixed-set",
    type=int,
    default=32,
    show_default=True,
    help="First N examples whose loss is measured before and after training.",
)
@click.option("--seed", type=int, default=42, show_default=True)
@click.option(
    "--report-to", multiple=True, type=click.Choice(TARGETS), help="Also log to wandb or tensorboard (repeatable)."
)
def train(**opts: Any) -> None:
    """Fine-tune a model with CE, GEM, TOFU, focal or CE+entropy; the checkpoint loads with `evalkit run --model`."""
    info = api.train(**opts)
    click.echo(
        f"trained {info['steps']} steps on {info['examples']} examples with {opts['loss']} "
        f"({info['loss_path']} path); loss on the first {info['fixed_set_examples']} examples "
        f"{info['fixed_set_loss_before']:.4f} -> "
        f"{info['fixed_set_loss_after']:.4f}; checkpoint: {opts['output_dir']}"
    )


@cli.command()
@click.option("--model", default=None, help="Local folder or hub id. Default: embedded SmolLM2-135M-Instruct.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option(
    "--port", type=click.IntRange(min=0, max=65535), default=8000, show_default=True, help="0: any free port."
)
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True, help="Sequences per call.")
@click.option("--served-model-name", default=None, help="Model name clients use (default: the model's).")
@click.option(
    "--api-key-env", default=None, help="NAME of a variable holding a key clients must send as a Bearer token."
)
@click.option(
    "--max-n", type=click.IntRange(min=1), default=_SERVE_LIMITS.max_n, show_default=True, help="Samples per request."
)
@click.option(
    "--max-tokens-limit",
    type=click.IntRange(min=1),
    default=_SERVE_LIMITS.max_tokens,
    show_default=True,
    help="Largest max_tokens.",
)
@click.option(
    "--max-prompt-tokens",
    type=click.IntRange(min=1),
    default=_SERVE_LIMITS.max_prompt_tokens,
    show_default=True,
    help="Tokens of a prompt.",
)
@click.option(
    "--max-body-bytes",
    type=click.IntRange(min=1),
    default=_SERVE_LIMITS.max_body_bytes,
    show_default=True,
    help="Bytes of a request body.",
)
@click.option(
    "--max-connections",
    type=click.IntRange(min=1),
    default=_SERVE_LIMITS.max_connections,
    show_default=True,
    help="Served at once; more: 503.",
)
@click.option(
    "--read-timeout",
    type=click.FloatRange(min=0, min_open=True, max=86400),
    default=_SERVE_LIMITS.read_timeout,
    show_default=True,
    help="Seconds a client has to send a request.",
)
def serve(**opts: Any) -> None:
    """Serve a model over an OpenAI-compatible API (chat and completions) with the transformers backend."""
    limits = ServeLimits(
        max_n=opts["max_n"],
        max_tokens=opts["max_tokens_limit"],
        max_prompt_tokens=opts["max_prompt_tokens"],
        max_body_bytes=opts["max_body_bytes"],
        max_connections=opts["max_connections"],
        read_timeout=opts["read_timeout"],
    )
    fields = ("model", "host", "port", "device", "batch_size", "served_model_name", "api_key_env")
    serve_model(ServeConfig(**{k: opts[k] for k in fields}, limits=limits))


@cli.group()
def diagnose() -> None:
    """Model diagnostics: next-token distributions, parameter distance from the base model."""


@diagnose.command(name="next-token")
@click.option("--prompt", "probe", required=True, help="The probe prompt (sent as the user turn).")
@click.option("--model", "models", multiple=True, help="Folder or hub id (repeatable); default: the embedded model.")
@click.option("--top-k", type=click.IntRange(1, 50), default=10, show_default=True, help="Tokens shown per model.")
@click.option("--no-chat", is_flag=True, help="Score the raw prompt, without the chat template.")
@click.option("-o", "--output", required=True, type=click.Path(path_type=Path), help="PNG file to write.")
def next_token(probe: str, models: tuple[str, ...], top_k: int, no_chat: bool, output: Path) -> None:
    """Plot the next-token distribution of a probe prompt for one or several models (log axis)."""
    if output.suffix.lower() != ".png":
        raise EvalkitError(f"-o {output}: give a .png file name")
    results = [next_token_distribution(m, probe, top_k, chat=not no_chat) for m in (models or (None,))]
    plot_next_tokens(results, output, probe)
    for r in results:
        top = ", ".join(f"{t!r} {p:.3f}" for t, p in zip(r.tokens[:5], r.probs[:5]))
        click.echo(f"{r.model}: entropy {r.entropy:.3f} nats; top: {top}")
    click.echo(f"plot: {output} (numbers: {output.with_suffix('.json')})")


@diagnose.command()
@click.argument("checkpoint")
@click.option("--base", default=None, help="Base model folder or hub id (default: the embedded model).")
@click.option("--json", "as_json", is_flag=True, help="Print the distances (and per-tensor ones) as JSON.")
def distance(checkpoint: str, base: str | None, as_json: bool) -> None:
    """L2 distance of a checkpoint's parameters (full folder or LoRA adapter) from its base model."""
    d = checkpoint_distance(checkpoint, base)
    if as_json:
        click.echo(json.dumps(dataclasses.asdict(d), indent=2))
    else:
        click.echo(
            f"L2 distance {d.l2:.6g} (relative {d.relative:.6g} of the base norm {d.base_norm:.6g}) "
            f"over {d.n_parameters:,} parameters"
        )


def main() -> None:
    """Entry point: one line on stderr and exit 2 for any user error, never a traceback."""
    try:
        code = cli.main(prog_name="evalkit", standalone_mode=False)
    except EvalkitError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.NoArgsIsHelpError as exc:
        click.echo(exc.format_message())
        sys.exit(2)
    except click.UsageError as exc:
        click.echo(f"error: {exc.format_message()}", err=True)
        sys.exit(2)
    except click.Abort:
        click.echo("error: aborted", err=True)
        sys.exit(130)
    except KeyboardInterrupt:
        click.echo("error: interrupted; finished samples are cached, run again to resume", err=True)
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)
