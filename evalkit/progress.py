"""A progress bar over samples (cached samples advance it too), on stderr; none when a run draws
no samples (lm-eval and perplexity tasks only), rather than an empty ``samples 0/0``."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


@contextmanager
def progress_bar(total: int, enabled: bool = True, label: str = "samples") -> Iterator[Callable[[int], None]]:
    if not enabled or total <= 0:
        yield lambda _n: None
        return
    columns = (TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True)) as bar:
        task = bar.add_task(label, total=total)
        yield lambda n: bar.advance(task, n)
