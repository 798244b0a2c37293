"""lm-eval's own terminal output kept out of evalkit's while it scores a task.

lm-eval draws tqdm bars of its own (building contexts, running requests, bootstrapping stderr) and,
outside a git repository, lets `git describe` print ``fatal: not a git repository`` (it records
the working directory's commit, which says nothing about an evalkit run). Inside
:func:`quiet_lm_eval` its modules' tqdm is a disabled one, the git lookup asks nothing of git,
and the progress bars of datasets and transformers (loading the model) are off; everything is
put back afterwards.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


def _silent_tqdm(original: type) -> type:
    class Silent(original):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs["disable"] = True
            super().__init__(*args, **kwargs)

    return Silent


def _no_git_hash() -> None:
    return None


@contextmanager
def quiet_lm_eval() -> Iterator[None]:
    import datasets  # heavy, loaded already by lm-eval
    import lm_eval.evaluator  # noqa: F401 - heavy; `import lm_eval` alone would load it after the patching
    import tqdm  # loaded already by lm-eval
    import tqdm.auto
    from transformers.utils import logging as hf_logging  # heavy, loaded already by lm-eval

    bars = (tqdm.tqdm, tqdm.auto.tqdm)
    patched: list[tuple[Any, str, Any]] = []
    # lm-eval's modules, and the tqdm package itself for its imports inside functions.
    modules = [m for name, m in list(sys.modules.items()) if name.startswith("lm_eval") and m is not None]
    for module in (*modules, tqdm, tqdm.auto):
        for attr, value in list(vars(module).items()):
            if value in bars:
                patched.append((module, attr, value))
                setattr(module, attr, _silent_tqdm(value))
            elif attr == "get_git_commit_hash" and callable(value):
                patched.append((module, attr, value))
                setattr(module, attr, _no_git_hash)
    datasets_bars, hf_bars = not datasets.are_progress_bars_disabled(), hf_logging.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        for module, attr, value in reversed(patched):
            setattr(module, attr, value)
        if datasets_bars:
            datasets.enable_progress_bars()
        if hf_bars:
            hf_logging.enable_progress_bar()
