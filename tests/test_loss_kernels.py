"""The Triton loss kernels and the fused LM head + loss against the reference losses.

The oracles are tests/reference_losses.py (the GEM paper's Listing 1, the TOFU paper's Definition 3.4 and
the focal and CE + entropy formulas with plain autograd), evaluated in float64 on the same
values. Relative error (norm of the difference over the norm of the reference) must be at most
1e-5 in float32 and 2e-2 in bfloat16, for the value and the gradient.

Without CUDA the kernels run through Triton's CPU interpreter: tests/conftest.py sets
TRITON_INTERPRET=1 before anything imports Triton (Triton decides at import time). Shapes stay small: V = 100 with
blocks of 32 columns, so every row takes several blocks and a ragged last one.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.reference_losses import ce_entropy_direct, focal_direct, listing1_gem_loss, shifted, tempered_ce, tofu_direct

pytest.importorskip("triton", reason="the loss kernels need Triton (pip install -e '.[dev]')")

CUDA = torch.cuda.is_available()
DEVICE = "cuda" if CUDA else "cpu"
REPO = Path(__file__).resolve().parent.parent
BLOCK = 32
VOCAB = 100  # not a multiple of BLOCK
TOLERANCE = {torch.float32: 1e-5, torch.bfloat16: 2e-2}


def _import_kernels():
    from evalkit.train.kernels import row_kernels, triton_losses

    if not CUDA and not row_kernels.INTERPRETED:
        pytest.fail("no CUDA GPU and Triton was imported without TRITON_INTERPRET=1 (tests/conftest.py sets it)")
    try:
        import liger_kernel.transformers.functional  # noqa: F401
    except ImportError:
        return triton_losses, False
    return triton_losses, True


kernels, HAS_LIGER = _import_kernels()

from evalkit.train import fused_linear  # noqa: E402
from evalkit.train.loss_spec import LossSpec  # noqa: E402


def _batch(dtype: torch.dtype, seed: int = 0, vocab: int = VOCAB):
    gen = torch.Generator().manual_seed(seed)
    logits = 3 * torch.randn(4, 9, vocab, generator=gen)
    logits[3] += 400.0  # far from 0: the running maximum must be subtracted
    labels = torch.randint(0, vocab, (4, 9), generator=gen)
    labels[0, :4] = -100  # a masked prompt
    labels[1, ::3] = -100  # scattered ignored positions
    labels[2] = -100  # a row with nothing to score
    labels[3, -2:] = -100  # padding
    return logits.to(dtype).to(DEVICE), labels.to(DEVICE)


def _value_and_grad(fn, logits: torch.Tensor, labels: torch.Tensor):
    x = logits.detach().clone().requires_grad_(True)
    loss = fn(x, labels)
    loss.backward()
    return loss.detach(), x.grad


def _relative_error(ours: torch.Tensor, reference: torch.Tensor) -> float:
    ours, reference = ours.double(), reference.double()
    return float((ours - reference).norm() / reference.norm().clamp_min(1e-300))


# (name, spec, value oracle, gradient oracle); the oracles take float64 logits and labels.
CASES = [
    ("ce", LossSpec("tempered_ce"), lambda z, y: tempered_ce(z, y, 1.0), lambda z, y: tempered_ce(z, y, 1.0)),
    *[
        (
            f"gem-linear-{beta}",
            LossSpec("tempered_ce", beta=beta),
            lambda z, y, b=beta: tempered_ce(z, y, b),  # GEM-linear's value is beta * CE(z / beta)
            lambda z, y, b=beta: listing1_gem_loss(z, y, beta=b, h="linear"),
        )
        for beta in (0.5, 0.7, 0.9, 1.0)
    ],
    *[
        (
            f"gem-logsigmoid-{beta}",
            LossSpec("gem_logsigmoid", beta=beta),
            lambda z, y, b=beta: listing1_gem_loss(z, y, beta=b, h="log_sigmoid"),
            lambda z, y, b=beta: listing1_gem_loss(z, y, beta=b, h="log_sigmoid"),
        )
        for beta in (0.5, 0.7, 0.9, 1.0)
    ],
    *[
        (
            f"tofu-{beta}-{gamma}",
            LossSpec("tofu", beta=beta, gamma=gamma),
            lambda z, y, b=beta, g=gamma: tofu_direct(z, y, beta=b, gamma=g),
            lambda z, y, b=beta, g=gamma: tofu_direct(z, y, beta=b, gamma=g),
        )
        for beta, gamma in ((0.5, 3.0), (0.7, 1.0), (0.8, 3.0), (0.9, 0.5), (1.0, 0.0))
    ],
    *[
        (
            f"focal-{gamma}",
            LossSpec("focal", gamma=gamma),
            lambda z, y, g=gamma: focal_direct(z, y, gamma=g),
            lambda z, y, g=gamma: focal_direct(z, y, gamma=g),
        )
        for gamma in (0.0, 1.0, 2.0)
    ],
    (
        "ce-entropy",
        LossSpec("ce_entropy", lam=0.1),
        lambda z, y: ce_entropy_direct(z, y, lam=0.1),
        lambda z, y: ce_entropy_direct(z, y, lam=0.1),
    ),
]
CASE_IDS = [case[0] for case in CASES]


def _references(case, logits: torch.Tensor, labels: torch.Tensor):
    _, _, value_oracle, grad_oracle = case
    z64 = logits.detach().double()
    value = value_oracle(z64, labels)
    return value, _value_and_grad(grad_oracle, z64, labels)[1]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_kernel_value_and_gradient_equal_the_reference(case, dtype):
    logits, labels = _batch(dtype)
    spec = case[1]
    value, grad = _value_and_grad(lambda x, y: kernels.row_loss(x, y, spec, block=BLOCK), logits, labels)
    ref_value, ref_grad = _references(case, logits, labels)
    tolerance = TOLERANCE[dtype]
    assert grad.dtype == dtype and torch.isfinite(value)
    assert _relative_error(value, ref_value) <= tolerance, (value, ref_value)
    assert _relative_error(grad, ref_grad) <= tolerance
    # Positions that score nothing (ignored next label, the last position, the masked row) get exactly 0.
    target = torch.full_like(labels, -100)
    target[:, :-1] = labels[:, 1:]
    assert grad[target == -100].eq(0).all() and grad[target != -100].abs().sum() > 0


def test_public_kernel_losses_match_the_torch_losses_and_default_blocks():
    from evalkit.train import losses

    logits, labels = _batch(torch.float32, seed=3)
    pairs = [
        (kernels.ce_loss, losses.ce_loss, {}),
        (kernels.gem_loss, losses.gem_loss, {"beta": 0.7}),
        (kernels.gem_loss, losses.gem_loss, {"beta": 0.7, "h": "logsigmoid"}),
        (kernels.tofu_loss, losses.tofu_loss, {"beta": 0.8, "gamma": 3.0}),
        (kernels.focal_loss, losses.focal_loss, {"gamma": 2.0}),
        (kernels.ce_entropy_loss, losses.ce_entropy_loss, {"lam": 0.1}),
    ]
    for ours, theirs, kwargs in pairs:  # default block: one block of 128 columns, masked lanes
        value, grad = _value_and_grad(lambda x, y, f=ours, k=kwargs: f(x, y, **k), logits, labels)
        ref_value, ref_grad = _value_and_grad(lambda x, y, f=theirs, k=kwargs: f(x, y, **k), logits, labels)
        assert _relative_error(value, ref_value) <= 1e-5 and _relative_error(grad, ref_grad) <= 1e-5, ours


# The interpreter evaluates both sides of tl.where with numpy, which warns about the side not taken.
@pytest.mark.filterwarnings("ignore:divide by zero:RuntimeWarning", "ignore:invalid value:RuntimeWarning")
def test_kernel_edge_cases():
    logits, labels = _batch(torch.float32)
    nothing = torch.full_like(labels, -100)
    value, grad = _value_and_grad(lambda x, y: kernels.tofu_loss(x, y), logits, nothing)
    assert value.item() == 0.0 and grad.eq(0).all()
    with torch.no_grad():  # evaluation: the forward pass alone
        assert kernels.gem_loss(logits, labels).item() == pytest.approx(tempered_ce(logits, labels, 0.7).item(), 1e-5)
    x = logits.clone().requires_grad_(True)
    loss = kernels.gem_loss(x, labels, h="logsigmoid")
    (2.5 * loss).backward()  # the incoming gradient scales the result
    listing = _value_and_grad(lambda z, y: listing1_gem_loss(z, y, h="log_sigmoid"), logits, labels)[1]
    assert _relative_error(x.grad, 2.5 * listing) <= 1e-5
    # A token the model is certain of (p_y rounds to 1 in float32): (1 - p)^0 is 1, not exp(0 * log 0).
    certain = logits.clone()
    certain[0, 5:].scatter_(-1, labels[0, 6:, None], 200.0)
    for case in CASES:
        if case[0] in ("focal-0.0", "focal-1.0", "tofu-0.7-1.0", "tofu-1.0-0.0", "ce-entropy"):
            value, grad = _value_and_grad(
                lambda x, y, s=case[1]: kernels.row_loss(x, y, s, block=BLOCK), certain, labels
            )
            if case[0] == "tofu-1.0-0.0":  # g = 1 at gamma = 0: TOFU is tempered CE (the reference reads 0 * inf)
                case = (case[0], case[1], lambda z, y: tempered_ce(z, y, 1.0), lambda z, y: tempered_ce(z, y, 1.0))
            ref_value, ref_grad = _references(case, certain, labels)
            assert torch.isfinite(value) and torch.isfinite(grad).all(), case[0]
            assert abs(value.double() - ref_value) <= 1e-5 and (grad.double() - ref_grad).abs().max() <= 1e-6, case[0]
    with pytest.raises(ValueError, match="h must be"):
        kernels.gem_loss(logits, labels, h="quadratic")
    with pytest.raises(ValueError, match="expected logits"):
        kernels.ce_loss(logits[0], labels)


# ---------------------------------------------------------------- fused LM head + loss

HIDDEN = 24


def _hidden_batch(dtype: torch.dtype, seed: int = 1):
    gen = torch.Generator().manual_seed(seed)
    hidden = torch.randn(4, 9, HIDDEN, generator=gen)
    weight = torch.randn(VOCAB, HIDDEN, generator=gen) / HIDDEN**0.5 * 3
    _, labels = _batch(torch.float32, seed=seed)
    return hidden.to(dtype).to(DEVICE), weight.to(dtype).to(DEVICE), labels


def _fused_grads(fn, hidden, weight, labels):
    h = hidden.detach().clone().requires_grad_(True)
    w = weight.detach().clone().requires_grad_(True)
    loss = fn(h, w, labels)
    loss.backward()
    return loss.detach(), h.grad, w.grad


FUSED_CASES = [
    c
    for c in CASES
    if c[0] in ("ce", "gem-linear-0.7", "gem-logsigmoid-0.5", "tofu-0.8-3.0", "focal-2.0", "ce-entropy")
]
# Liger-Kernel has cross-entropy only: it runs the tempered-CE cases (CE, GEM-linear).
FUSED_RUNS = [
    pytest.param(case, impl, id=f"{case[0]}-{impl}")
    for case in FUSED_CASES
    for impl in ("torch", "triton", "liger")
    if impl != "liger" or case[1].kind == "tempered_ce"
]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
@pytest.mark.parametrize(("case", "impl"), FUSED_RUNS)
def test_fused_linear_equals_the_reference_on_materialised_logits(case, dtype, impl, monkeypatch):
    spec = case[1]
    if impl == "liger" and not HAS_LIGER:
        pytest.skip("liger-kernel is not installed (pip install -e '.[dev]')")
    monkeypatch.setattr(fused_linear, "CHUNK_BYTES", 4 * VOCAB * 5)  # 5 rows per chunk: several chunks
    hidden, weight, labels = _hidden_batch(dtype)
    value, grad_h, grad_w = _fused_grads(
        lambda h, w, y: fused_linear.fused_linear_loss(h, w, y, spec, impl=impl), hidden, weight, labels
    )
    _, _, value_oracle, grad_oracle = case
    ref_value = value_oracle(hidden.double() @ weight.double().T, labels)
    _, ref_h, ref_w = _fused_grads(lambda h, w, y: grad_oracle(h @ w.T, y), hidden.double(), weight.double(), labels)
    tolerance = TOLERANCE[dtype]
    assert grad_h.dtype == grad_w.dtype == dtype
    assert _relative_error(value, ref_value) <= tolerance, (value, ref_value)
    assert _relative_error(grad_h, ref_h) <= tolerance and _relative_error(grad_w, ref_w) <= tolerance
    assert grad_h[:, -1].eq(0).all()  # the last position scores nothing


def test_fused_linear_edge_cases():
    hidden, weight, labels = _hidden_batch(torch.float32)
    spec = LossSpec("tofu", beta=0.8, gamma=3.0)
    value, grad_h, grad_w = _fused_grads(
        lambda h, w, y: fused_linear.fused_linear_loss(h, w, y, spec, impl="torch"),
        hidden,
        weight,
        torch.full_like(labels, -100),
    )
    assert value.item() == 0.0 and grad_h.eq(0).all() and grad_w.eq(0).all()
    # Under autocast (as the Trainer runs bf16 with float32 weights): bf16 matmuls, float32 gradients.
    h = hidden.detach().clone().requires_grad_(True)
    w = weight.detach().clone().requires_grad_(True)
    with torch.autocast(DEVICE, dtype=torch.bfloat16):
        loss = fused_linear.fused_linear_loss(h, w, labels, spec, impl="torch")
    loss.backward()
    _, ref_h, ref_w = _fused_grads(lambda a, b, y: tofu_direct(a @ b.T, y), hidden.double(), weight.double(), labels)
    assert h.grad.dtype == w.grad.dtype == torch.float32
    assert _relative_error(h.grad, ref_h) <= 2e-2 and _relative_error(w.grad, ref_w) <= 2e-2
    with pytest.raises(RuntimeError, match="one backward pass"):
        loss.backward()
    entropy = fused_linear.token_entropy(hidden, weight, labels)
    z, _ = shifted(hidden @ weight.T, labels)
    log_p = torch.log_softmax(z.double(), -1)
    assert entropy == pytest.approx(float(-(log_p.exp() * log_p).sum(-1).mean()), rel=1e-6)
    with pytest.raises(ValueError, match="do not multiply"):
        fused_linear.fused_linear_loss(hidden, weight.T, labels, spec)


def test_auto_implementations():
    ce, gem = LossSpec("tempered_ce"), LossSpec("gem_logsigmoid", beta=0.7)
    assert fused_linear.choose_impl(gem, "cpu") == ("torch", None)
    assert fused_linear.choose_impl(gem, "cuda") == ("triton", None)
    assert fused_linear.choose_impl(ce, "cuda")[0] == ("liger" if HAS_LIGER else "triton")


def test_kernels_compile_for_a_hopper_gpu_without_one():
    """The interpreter accepts code the GPU compiler rejects: lower every kernel to a cubin for sm_90."""
    script = r"""
import os
os.environ.pop("TRITON_INTERPRET", None)
import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource
from evalkit.train.kernels import row_kernels as rk
common = {"KIND": "constexpr", "IGNORE_INDEX": "constexpr", "BLOCK": "constexpr"}
forward = {"z_ptr": "*bf16", "z_row_stride": "i64", "y_ptr": "*i64", "loss_ptr": "*fp32", "stats_ptr": "*fp32",
           "V": "i32", "beta": "fp32", "gamma": "fp32", "lam": "fp32", **common}
backward = {"z_ptr": "*bf16", "z_row_stride": "i64", "grad_ptr": "*bf16", "grad_row_stride": "i64",
            "y_ptr": "*i64", "stats_ptr": "*fp32", "scale_ptr": "*fp32", "V": "i32", "beta": "fp32",
            "lam": "fp32", **common}
block, warps = rk._launch_config(131072, None)
for kind in range(len(rk.ROW_KINDS)):
    for fn, signature in ((rk._forward_kernel, forward), (rk._backward_kernel, backward)):
        source = ASTSource(fn=fn, signature=signature, constexprs={"KIND": kind, "IGNORE_INDEX": -100, "BLOCK": block})
        compiled = triton.compile(source, target=GPUTarget("cuda", 90, 32), options={"num_warps": warps})
        assert compiled.asm.get("cubin"), (fn, kind)
print("compiled", len(rk.ROW_KINDS) * 2)
"""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("TRITON_INTERPRET", None)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0 and "compiled 10" in result.stdout, result.stderr[-3000:]


@pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU: compares the compiled kernels at a real vocabulary size")
def test_compiled_kernels_match_the_torch_losses_at_vocabulary_scale():
    from evalkit.train import losses

    gen = torch.Generator().manual_seed(0)
    logits = (3 * torch.randn(2, 256, 49_152, generator=gen)).to(DEVICE)
    labels = torch.randint(0, 49_152, (2, 256), generator=gen).to(DEVICE)
    labels[:, :64] = -100
    for name, kwargs in [("gem_loss", {"h": "logsigmoid"}), ("tofu_loss", {}), ("ce_entropy_loss", {})]:
        for dtype, tolerance in TOLERANCE.items():
            z = logits.to(dtype)
            value, grad = _value_and_grad(lambda x, y: getattr(kernels, name)(x, y, **kwargs), z, labels)
            ref_value, ref_grad = _value_and_grad(lambda x, y: getattr(losses, name)(x.float(), y, **kwargs), z, labels)
            assert _relative_error(value, ref_value) <= tolerance and _relative_error(grad, ref_grad) <= tolerance
