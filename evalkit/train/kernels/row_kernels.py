"""Triton kernels: the row losses of `evalkit.train.loss_spec` in two passes over each row's logits.

No kept library has GEM, TOFU, focal or CE + entropy kernels (Liger-Kernel and Cut Cross-Entropy
have cross-entropy only), so they are written here. One program handles one row (one token):

* forward: a single online pass over V in blocks keeps the running maximum m and the rescaled
  sums each loss needs (sum exp(z - m), sum exp((z - m) / beta), the entropy's and GEM-
  logsigmoid's weighted sums). It writes the row's loss and three float32 statistics (the
  maximum, a log-normaliser relative to it, one coefficient). Rows whose label is ignore_index write 0.
* backward: a second pass recomputes p or q from the statistics and writes the gradient,
  scaled by d total / d row loss (read from a one-element tensor, so no host sync). It may write
  in place over the logits it reads (every block is read before it is written; GEM-logsigmoid
  reads z_y before the loop).

All arithmetic is float32 whatever the logits' dtype; the gradient is stored in the gradient
buffer's dtype. Kernels are decorated at import: with TRITON_INTERPRET=1 set before this module
is imported they run on CPU tensors through Triton's interpreter (the tests do this).
"""

from __future__ import annotations

import os

import torch
import triton
import triton.language as tl

from evalkit.train.loss_spec import ROW_KINDS, LossSpec

# Whether these kernels were decorated for Triton's CPU interpreter (decided once, at import, by
# the variable Triton itself reads).
INTERPRETED = os.environ.get("TRITON_INTERPRET", "0").strip().lower() in ("1", "true", "yes", "on")
MAX_BLOCK = 16384
STATS: tl.constexpr = tl.constexpr(3)  # float32 numbers kept per row between the passes

TEMPERED_CE: tl.constexpr = tl.constexpr(0)
GEM_LOGSIGMOID: tl.constexpr = tl.constexpr(1)
TOFU: tl.constexpr = tl.constexpr(2)
FOCAL: tl.constexpr = tl.constexpr(3)
CE_ENTROPY: tl.constexpr = tl.constexpr(4)
_KIND_CODES = {kind: code for code, kind in enumerate(ROW_KINDS)}


@triton.jit
def _pow(x, e):
    # x ** e for x >= 0 with x ** 0 = 1, as torch.pow (exp(0 * log 0) would be nan).
    return tl.where(e == 0.0, 1.0, tl.exp(e * tl.log(x)))


@triton.jit
def _forward_kernel(
    z_ptr,
    z_row_stride,
    y_ptr,
    loss_ptr,
    stats_ptr,
    V,
    beta,
    gamma,
    lam,
    KIND: tl.constexpr,
    IGNORE_INDEX: tl.constexpr,
    BLOCK: tl.constexpr,
):
    row = tl.program_id(0).to(tl.int64)
    y = tl.load(y_ptr + row)
    if y == IGNORE_INDEX:
        tl.store(loss_ptr + row, 0.0)
        for i in range(STATS):
            tl.store(stats_ptr + STATS * row + i, 0.0)
        return
    z_row = z_ptr + row * z_row_stride
    z_y = tl.load(z_row + y).to(tl.float32)
    inv_beta = 1.0 / beta
    m = float("-inf")
    s_p = 0.0  # sum exp(z - m)
    t_p = 0.0  # sum exp(z - m) (z - m): the entropy's, kept relative to m for precision
    s_q = 0.0  # sum exp((z - m) / beta)
    a_q = 0.0  # sum exp((z - m) / beta) w (z - z_y)
    c_q = 0.0  # sum exp((z - m) / beta) w
    for start in range(0, V, BLOCK):
        cols = start + tl.arange(0, BLOCK)
        mask = cols < V
        z = tl.load(z_row + cols, mask=mask, other=float("-inf")).to(tl.float32)
        m_new = tl.maximum(m, tl.max(z, axis=0))
        if KIND == TOFU or KIND == FOCAL or KIND == CE_ENTROPY:
            e_p = tl.exp(z - m_new)
            r_p = tl.exp(m - m_new)
            if KIND == CE_ENTROPY:
                # sum e^(z - m_new) (z - m_new) = r (t + (m - m_new) s) + this block's terms
                moved = tl.where(s_p > 0.0, m - m_new, 0.0) * s_p
                t_p = r_p * (t_p + moved) + tl.sum(e_p * tl.where(mask, z - m_new, 0.0), axis=0)
            s_p = s_p * r_p + tl.sum(e_p, axis=0)
        if KIND == TEMPERED_CE or KIND == GEM_LOGSIGMOID or KIND == TOFU:
            e_q = tl.exp((z - m_new) * inv_beta)
            r_q = tl.exp((m - m_new) * inv_beta)
            s_q = s_q * r_q + tl.sum(e_q, axis=0)
            if KIND == GEM_LOGSIGMOID:
                diff = tl.where(mask, z - z_y, 0.0)
                weighted = tl.where(mask, e_q * tl.sigmoid(0.01 * diff), 0.0)
                a_q = a_q * r_q + tl.sum(weighted * diff, axis=0)
                c_q = c_q * r_q + tl.sum(weighted, axis=0)
        m = m_new
    # Statistics: m, the log of the row's normaliser relative to m (of q, or of p for focal and
    # CE + entropy), and one coefficient. Differences to m are formed first, for precision.
    if KIND == TEMPERED_CE:
        log_s = tl.log(s_q)
        loss = beta * log_s + (m - z_y)
        coef = 1.0
    elif KIND == GEM_LOGSIGMOID:
        log_s = tl.log(s_q)
        loss = a_q / s_q
        coef = c_q / s_q
    elif KIND == TOFU:
        log_s = tl.log(s_q)
        p = tl.minimum(tl.maximum(tl.exp((z_y - m) - tl.log(s_p)), 1e-12), 1.0)
        # gamma p (1 - p)^(gamma - 1) log p tends to 0 as p -> 1 (for every gamma >= 0); at p = 1
        # and gamma < 1 the product would read inf * 0.
        second = gamma * p * _pow(1.0 - p, gamma - 1.0) * tl.log(p)
        coef = _pow(1.0 - p, gamma) - tl.where((gamma == 0.0) | (p >= 1.0), 0.0, second)
        loss = coef * (beta * log_s + (m - z_y))
    elif KIND == FOCAL:
        log_s = tl.log(s_p)
        lp = (z_y - m) - log_s
        p = tl.exp(lp)
        rest = 1.0 - p
        loss = -_pow(rest, gamma) * lp
        through_weight = tl.where(gamma == 0.0, 0.0, gamma * p * _pow(rest, gamma - 1.0) * lp)
        coef = through_weight - _pow(rest, gamma)  # d loss / d lp_y
    else:
        log_s = tl.log(s_p)
        entropy = log_s - t_p / s_p
        loss = (log_s + (m - z_y)) - lam * entropy
        coef = entropy
    tl.store(loss_ptr + row, loss)
    tl.store(stats_ptr + STATS * row, m)
    tl.store(stats_ptr + STATS * row + 1, log_s)
    tl.store(stats_ptr + STATS * row + 2, coef)


@triton.jit
def _backward_kernel(
    z_ptr,
    z_row_stride,
    grad_ptr,
    grad_row_stride,
    y_ptr,
    stats_ptr,
    scale_ptr,
    V,
    beta,
    lam,
    KIND: tl.constexpr,
    IGNORE_INDEX: tl.constexpr,
    BLOCK: tl.constexpr,
):
    row = tl.program_id(0).to(tl.int64)
    y = tl.load(y_ptr + row)
    g_row = grad_ptr + row * grad_row_stride
    if y == IGNORE_INDEX:
        for start in range(0, V, BLOCK):
            cols = start + tl.arange(0, BLOCK)
            tl.store(g_row + cols, tl.zeros([BLOCK], dtype=grad_ptr.dtype.element_ty), mask=cols < V)
        return
    z_row = z_ptr + row * z_row_stride
    scale = tl.load(scale_ptr).to(tl.float32)
    m = tl.load(stats_ptr + STATS * row)
    log_s = tl.load(stats_ptr + STATS * row + 1)
    coef = tl.load(stats_ptr + STATS * row + 2)
    inv_beta = 1.0 / beta
    z_y = tl.load(z_row + y).to(tl.float32)  # before any in-place write
    for start in range(0, V, BLOCK):
        cols = start + tl.arange(0, BLOCK)
        mask = cols < V
        z = tl.load(z_row + cols, mask=mask, other=0.0).to(tl.float32)
        if KIND == TEMPERED_CE:
            grad = tl.exp((z - m) * inv_beta - log_s)
            at_label = 1.0
        elif KIND == GEM_LOGSIGMOID:
            grad = tl.exp((z - m) * inv_beta - log_s) * tl.sigmoid(0.01 * (z - z_y))
            at_label = coef
        elif KIND == TOFU:
            grad = coef * tl.exp((z - m) * inv_beta - log_s)
            at_label = coef
        elif KIND == FOCAL:
            grad = -coef * tl.exp((z - m) - log_s)
            at_label = -coef
        else:
            log_p = (z - m) - log_s
            grad = tl.exp(log_p) * (1.0 + lam * (log_p + coef))
            at_label = 1.0
        grad = tl.where(cols == y, grad - at_label, grad) * scale
        tl.store(g_row + cols, grad.to(grad_ptr.dtype.element_ty), mask=mask)


def _launch_config(vocab: int, block: int | None) -> tuple[int, int]:
    block = block or min(triton.next_power_of_2(vocab), MAX_BLOCK)
    return block, max(4, min(32, block // 512))


def _check_rows(z: torch.Tensor, y: torch.Tensor) -> None:
    if z.dim() != 2 or z.stride(-1) != 1 or y.shape != z.shape[:1] or y.dtype != torch.long:
        raise ValueError(
            f"expected rows z [n, V] (unit column stride) and int64 labels [n], got {tuple(z.shape)}, {tuple(y.shape)}"
        )


def forward_rows(
    z: torch.Tensor, y: torch.Tensor, spec: LossSpec, ignore_index: int = -100, block: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row loss [n] (0 where y is ignore_index) and the statistics [n, 3] the backward pass reads."""
    _check_rows(z, y)
    loss = torch.empty(z.shape[0], dtype=torch.float32, device=z.device)
    stats = torch.empty(z.shape[0], STATS.value, dtype=torch.float32, device=z.device)
    if z.shape[0] == 0:
        return loss, stats
    block, warps = _launch_config(z.shape[1], block)
    _forward_kernel[(z.shape[0],)](
        z,
        z.stride(0),
        y,
        loss,
        stats,
        z.shape[1],
        float(spec.beta),
        float(spec.gamma),
        float(spec.lam),
        KIND=_KIND_CODES[spec.kind],
        IGNORE_INDEX=ignore_index,
        BLOCK=block,
        num_warps=warps,
    )
    return loss, stats


def backward_rows(
    z: torch.Tensor,
    y: torch.Tensor,
    stats: torch.Tensor,
    scale: torch.Tensor,
    spec: LossSpec,
    out: torch.Tensor,
    ignore_index: int = -100,
    block: int | None = None,
) -> torch.Tensor:
    """Write scale * d row-loss / d z into `out` (which may be z itself); zero rows where y is ignored."""
    _check_rows(z, y)
    if out.shape != z.shape or out.stride(-1) != 1:
        raise ValueError(f"gradient buffer {tuple(out.shape)} does not match the rows {tuple(z.shape)}")
    if z.shape[0] == 0:
        return out
    block, warps = _launch_config(z.shape[1], block)
    _backward_kernel[(z.shape[0],)](
        z,
        z.stride(0),
        out,
        out.stride(0),
        y,
        stats,
        scale,
        z.shape[1],
        float(spec.beta),
        float(spec.lam),
        KIND=_KIND_CODES[spec.kind],
        IGNORE_INDEX=ignore_index,
        BLOCK=block,
        num_warps=warps,
    )
    return out
