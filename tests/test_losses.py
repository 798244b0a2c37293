"""Training losses against the seeds' formulas: gradients to 1e-6 on random logits with ignored positions."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from evalkit.train.losses import ce_entropy_loss, ce_loss, focal_loss, gem_loss, tofu_loss, token_entropy
from tests.reference_losses import listing1_gem_loss, shifted, tempered_ce, tofu_direct


def _batch(seed: int, b: int = 3, t: int = 9, v: int = 67, dtype=torch.float32):
    gen = torch.Generator().manual_seed(seed)
    logits = (3 * torch.randn(b, t, v, generator=gen)).to(dtype)
    labels = torch.randint(0, v, (b, t), generator=gen)
    labels[0, :4] = -100  # a masked prompt
    labels[1, ::3] = -100  # scattered ignored positions
    labels[2, -2:] = -100  # padding at the end
    return logits, labels


def _grad(fn, logits, labels, **kw):
    x = logits.clone().requires_grad_(True)
    loss = fn(x, labels, **kw)
    loss.backward()
    return loss.detach(), x.grad


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize(("h", "listing_h"), [("linear", "linear"), ("logsigmoid", "log_sigmoid")])
def test_gem_gradients_equal_listing_1(seed, h, listing_h):
    logits, labels = _batch(seed)
    for beta in (0.7, 0.5, 0.9):
        _, ours = _grad(gem_loss, logits, labels, beta=beta, h=h)
        reference_value, reference = _grad(listing1_gem_loss, logits, labels, beta=beta, h=listing_h)
        assert torch.allclose(ours, reference, atol=1e-6, rtol=0), (ours - reference).abs().max()
        if h == "logsigmoid":  # the value is Listing 1's as well
            assert gem_loss(logits, labels, beta=beta, h=h).item() == pytest.approx(reference_value.item(), abs=1e-5)


def test_gem_linear_is_tempered_cross_entropy():
    logits, labels = _batch(5)
    value, ours = _grad(gem_loss, logits, labels, beta=0.7)
    twin_value, twin = _grad(tempered_ce, logits, labels, beta=0.7)
    assert torch.allclose(ours, twin, atol=1e-6, rtol=0) and value.item() == pytest.approx(twin_value.item(), abs=1e-5)


def test_gem_linear_tends_to_cross_entropy_as_beta_goes_to_one():
    logits, labels = _batch(6)
    _, ce_grad = _grad(lambda x, y: F.cross_entropy(*shifted(x, y)), logits, labels)
    gaps = [
        (_grad(gem_loss, logits, labels, beta=beta)[1] - ce_grad).abs().max().item() for beta in (0.5, 0.9, 0.99, 1.0)
    ]
    assert gaps[0] > gaps[1] > gaps[2] > gaps[3] and gaps[3] < 1e-6
    value, grad = _grad(ce_loss, logits, labels)
    assert torch.allclose(grad, ce_grad, atol=1e-6, rtol=0)
    assert value.item() == pytest.approx(F.cross_entropy(*shifted(logits, labels)).item(), abs=1e-5)


@pytest.mark.parametrize(("beta", "gamma"), [(0.8, 3.0), (0.5, 1.0), (1.0, 0.0)])
def test_tofu_equals_definition_3_4(beta, gamma):
    logits, labels = _batch(7)
    value, ours = _grad(tofu_loss, logits, labels, beta=beta, gamma=gamma)
    direct_value, direct = _grad(tofu_direct, logits, labels, beta=beta, gamma=gamma)
    assert value.item() == pytest.approx(direct_value.item(), abs=1e-5)
    assert torch.allclose(ours, direct, atol=1e-6, rtol=0)
    if gamma == 0.0:  # g = 1: TOFU reduces to GEM-linear's tempered CE
        assert torch.allclose(ours, _grad(gem_loss, logits, labels, beta=beta)[1], atol=1e-6, rtol=0)


def test_focal_and_entropy_regularised_losses_follow_their_formulas():
    logits, labels = _batch(8)
    z, y = shifted(logits, labels)
    log_p = torch.log_softmax(z, -1)
    p_y = log_p.gather(-1, y[:, None]).squeeze(-1).exp()
    assert focal_loss(logits, labels, gamma=2.0).item() == pytest.approx(
        (-((1 - p_y) ** 2) * p_y.log()).mean().item(), abs=1e-5
    )
    entropy = -(log_p.exp() * log_p).sum(-1)
    expected = (F.cross_entropy(z, y, reduction="none") - 0.1 * entropy).mean()
    assert ce_entropy_loss(logits, labels, lam=0.1).item() == pytest.approx(expected.item(), abs=1e-5)
    assert token_entropy(logits, labels) == pytest.approx(entropy.mean().item(), abs=1e-4)


def test_chunking_bf16_and_edge_cases(monkeypatch):
    import evalkit.train.losses as losses

    logits, labels = _batch(9)
    whole = _grad(gem_loss, logits, labels, h="logsigmoid")[1]
    monkeypatch.setattr(losses, "_CHUNK_ELEMENTS", 67 * 2)  # two tokens per chunk
    assert torch.allclose(_grad(gem_loss, logits, labels, h="logsigmoid")[1], whole, atol=1e-7)
    value, grad = _grad(gem_loss, logits.bfloat16(), labels)
    assert grad.dtype == torch.bfloat16 and torch.isfinite(value) and grad.abs().sum() > 0
    all_ignored = torch.full_like(labels, -100)
    value, grad = _grad(tofu_loss, logits, all_ignored)
    assert value.item() == 0.0 and grad.abs().sum() == 0
    x = logits.clone().requires_grad_(True)
    loss = gem_loss(x, labels)
    loss.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="one backward pass"):
        loss.backward()
    with pytest.raises(ValueError, match="h must be"):
        gem_loss(logits, labels, h="quadratic")
    with pytest.raises(ValueError, match="expected logits"):
        gem_loss(logits[0], labels)


def test_tofu_weight_at_a_certain_token_is_its_limit():
    from evalkit.train.losses import tofu_weight

    # g(p) -> 0 as p -> 1 for gamma > 0 (g(1, 0) = 1); the formula alone reads inf * 0 there for gamma < 1.
    certain = torch.tensor([1.0])
    for gamma, limit in [(0.0, 1.0), (0.5, 0.0), (1.0, 0.0), (3.0, 0.0)]:
        assert tofu_weight(certain, gamma).item() == limit
        assert tofu_weight(torch.tensor([1 - 1e-6]), gamma).item() == pytest.approx(limit, abs=1e-2)
    logits, labels = _batch(10)
    logits[0, 5:].scatter_(-1, labels[0, 6:, None], 200.0)  # p_y rounds to 1 in float32
    value, grad = _grad(tofu_loss, logits, labels, gamma=0.5)
    assert torch.isfinite(value) and torch.isfinite(grad).all()


def test_defaults_are_the_documented_ones_and_bad_arguments_fail():
    """docs/training.md's defaults (GEM beta 0.7, TOFU beta 0.8 gamma 3, focal gamma 2, entropy
    lambda 0.1), each against the reference formula with the value written out."""
    from tests.reference_losses import ce_entropy_direct, focal_direct

    logits, labels = _batch(11)
    pairs = [
        (gem_loss, listing1_gem_loss, {"beta": 0.7, "h": "logsigmoid"}, {"h": "logsigmoid"}),
        (tofu_loss, tofu_direct, {"beta": 0.8, "gamma": 3.0}, {}),
        (focal_loss, focal_direct, {"gamma": 2.0}, {}),
        (ce_entropy_loss, ce_entropy_direct, {"lam": 0.1}, {}),
    ]
    for ours, reference, written, default in pairs:
        h = {"h": "log_sigmoid"} if ours is gem_loss else {}
        expected = reference(logits, labels, **{**written, **h})
        assert ours(logits, labels, **default).item() == pytest.approx(expected.item(), abs=1e-5), ours.__name__
    assert gem_loss(logits, labels).item() == pytest.approx(tempered_ce(logits, labels, beta=0.7).item(), abs=1e-5)
    for bad in (
        {"beta": 0.0},
        {"beta": -1.0},
        {"gamma": -0.5},
        {"beta": 0.0, "gamma": 1.0},
        {"beta": 1.0, "gamma": -1},
    ):
        with pytest.raises(ValueError, match="need beta > 0 and gamma >= 0"):
            tofu_loss(logits, labels, **bad)
    with pytest.raises(ValueError, match="beta must be > 0"):
        gem_loss(logits, labels, beta=0.0)
    tofu_loss(logits, labels, beta=1.0, gamma=0.0)  # the boundary values are allowed
    for bad_labels in (labels[:, :-1], labels[:1], labels[..., None]):  # T, B, or rank differ
        with pytest.raises(ValueError, match="expected logits"):
            ce_loss(logits, bad_labels)
    with pytest.raises(ValueError, match="expected logits"):
        ce_loss(logits[..., None], labels)  # [B, T, V, 1]: the labels fit, the rank does not


def test_inputs_untouched_non_contiguous_logits_and_a_single_scored_token():
    """The caller's logits are never changed in place; a non-contiguous view gives the same loss
    and gradient; with one scored token the loss is that token's value (no division by 2)."""
    logits, labels = _batch(12)
    for fn, kw in [(gem_loss, {"beta": 0.5}), (gem_loss, {"beta": 2.0}), (tofu_loss, {"beta": 0.6, "gamma": 2.0})]:
        before = logits.clone()
        value, grad = _grad(fn, logits, labels, **kw)
        x = logits.clone().requires_grad_(True)
        fn(x, labels, **kw).backward()
        assert torch.equal(x.detach(), before), fn.__name__  # not divided by beta in place
        # a non-contiguous view (clone() would make it contiguous, so the leaf is the wider tensor)
        wider = torch.cat([logits, torch.zeros_like(logits)], dim=-1).requires_grad_(True)
        view = wider[..., : logits.shape[-1]]
        assert not view.is_contiguous()
        other_value = fn(view, labels, **kw)
        other_value.backward()
        assert other_value.item() == pytest.approx(value.item(), abs=1e-6)
        assert torch.allclose(wider.grad[..., : logits.shape[-1]], grad, atol=1e-7)
    for beta in (0.5, 1.0, 2.0):
        assert gem_loss(logits, labels, beta=beta).item() == pytest.approx(
            tempered_ce(logits, labels, beta=beta).item(), abs=1e-5
        )
        _, ours = _grad(gem_loss, logits, labels, beta=beta)
        _, reference = _grad(listing1_gem_loss, logits, labels, beta=beta)
        assert torch.allclose(ours, reference, atol=1e-6, rtol=0)
    one = torch.full_like(labels, -100)
    one[1, 4] = labels[1, 4]  # only position 3 of row 1 is scored
    z = logits[1, 3]
    log_p = torch.log_softmax(z, -1)
    assert ce_loss(logits, one).item() == pytest.approx(-log_p[labels[1, 4]].item(), abs=1e-5)
    value, grad = _grad(gem_loss, logits, one, beta=0.5)
    assert value.item() == pytest.approx(0.5 * -torch.log_softmax(z / 0.5, -1)[labels[1, 4]].item(), abs=1e-5)
    expected_grad = torch.softmax(z / 0.5, -1) - F.one_hot(labels[1, 4], logits.shape[-1]).float()
    assert torch.allclose(grad[1, 3], expected_grad, atol=1e-6)
    grad[1, 3] = 0
    assert not grad.any()  # no other position gets a gradient
    entropy = -(log_p.exp() * log_p).sum()
    assert token_entropy(logits, one) == pytest.approx(entropy.item(), abs=1e-5)
