"""Triton kernels of the training losses (CUDA; CPU through Triton's interpreter for the tests).

Importing this package does not import Triton; `unavailable_reason` says whether the kernels can
run on a device before anything imports them.
"""

from __future__ import annotations

import importlib.util
import os


def unavailable_reason(device_type: str) -> str | None:
    """None when the Triton kernels can run on tensors of this device type, else why not."""
    if importlib.util.find_spec("triton") is None:
        return "Triton is not installed (it ships with CUDA builds of PyTorch; pip install triton)"
    if device_type == "cuda":
        return None
    if device_type == "cpu":
        from evalkit.train.kernels import row_kernels

        if row_kernels.INTERPRETED:
            return None
        interpret = os.environ.get("TRITON_INTERPRET", "0")
        if interpret not in ("", "0"):
            return "the kernels were imported before TRITON_INTERPRET was set; set it before starting Python"
        return "Triton kernels need a CUDA GPU (or TRITON_INTERPRET=1, the slow CPU interpreter)"
    return f"Triton kernels do not run on {device_type} tensors"
