"""How far a fine-tuned checkpoint moved from its base model ("Preserving Diversity in SFT" Fig. 9).

distance = sqrt(sum over parameters of ||theta - theta_base||^2), the L2 norm of the whole
parameter difference, and relative = distance / ||theta_base||. Parameters are compared by name
(tied weights counted once). A LoRA adapter folder (adapter_config.json) is merged into its base
with peft first, so the distance is that of the weights the adapter produces.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evalkit.errors import ModelError
from evalkit.models import load_weights, resolve_model


@dataclass(frozen=True)
class Distance:
    l2: float
    relative: float  # l2 / ||base||
    base_norm: float
    n_parameters: int
    per_tensor: dict[str, float]  # name -> ||delta|| of that tensor


def _load(model: str | None) -> Any:
    """The model's weights in float32 on the CPU (distances are summed in float64)."""
    return load_weights(resolve_model(model), "causal_lm", "cpu", dtype="float32")


def load_checkpoint(checkpoint: str, base: Any) -> Any:
    """A full checkpoint, or a LoRA adapter folder merged into ``base`` (a loaded model)."""
    path = Path(checkpoint).expanduser()
    if (path / "adapter_config.json").is_file():
        try:
            from peft import PeftModel  # heavy (and optional): only for adapters
        except ImportError:
            raise ModelError(
                f"{path} is a LoRA adapter: its distance needs peft (pip install 'evalkit[train]')"
            ) from None

        try:
            return PeftModel.from_pretrained(base, path).merge_and_unload()
        except (OSError, ValueError, RuntimeError) as exc:
            raise ModelError(f"cannot merge the LoRA adapter {path}: {str(exc).splitlines()[0]}") from None
    return _load(checkpoint)


def parameter_distance(model: Any, base: Any) -> Distance:
    """L2 distance between two models' parameters of the same names and shapes."""
    import torch  # heavy; loaded already with the models

    theirs = dict(base.named_parameters())
    ours = dict(model.named_parameters())
    if set(ours) != set(theirs) or any(ours[k].shape != theirs[k].shape for k in ours):
        missing = sorted(set(ours) ^ set(theirs))[:3]
        raise ModelError(f"the checkpoint and the base model have different parameters (e.g. {missing or 'shapes'})")
    per_tensor: dict[str, float] = {}
    total = base_total = 0.0
    with torch.no_grad():
        for name, p in ours.items():
            q = theirs[name]
            sq = float((p.double() - q.double()).pow(2).sum())
            per_tensor[name] = math.sqrt(sq)
            total += sq
            base_total += float(q.double().pow(2).sum())
    n = sum(p.numel() for p in ours.values())
    base_norm = math.sqrt(base_total)
    return Distance(math.sqrt(total), math.sqrt(total) / base_norm if base_norm else math.nan, base_norm, n, per_tensor)


def checkpoint_distance(checkpoint: str, base: str | None) -> Distance:
    """Distance of a checkpoint (full folder or LoRA adapter) from its base (default: embedded)."""
    base_model = _load(base)
    if (Path(checkpoint).expanduser() / "adapter_config.json").is_file():
        merged = load_checkpoint(checkpoint, _load(base))  # peft merges in place: a second copy
        return parameter_distance(merged, base_model)
    return parameter_distance(load_checkpoint(checkpoint, None), base_model)
