"""The plain-PyTorch stand-in for TRL's Triton log-prob kernel computes what the kernel's contract says."""

from __future__ import annotations

import torch

from budgetreason.train.compat import FALLBACK_TOKEN_CHUNK, TorchChunkedLogProb, ensure_logprob_head


def test_fallback_matches_a_direct_computation_with_gradients():
    torch.manual_seed(0)
    n, h, v = FALLBACK_TOKEN_CHUNK + 37, 16, 50  # more than one chunk
    hidden = torch.randn(n, h, requires_grad=True)
    weight = torch.randn(v, h, requires_grad=True)
    bias = torch.randn(v)
    targets = torch.randint(0, v, (n,))
    temp = 0.7
    lp, ent, sq, mean, top1 = TorchChunkedLogProb.apply(hidden, weight, bias, targets, temp, 32768, None, 1.0,
                                                        ("log_probs", "entropy", "log_sum_sq_probs", "mean_logits", "is_top1"))
    z = (hidden @ weight.t() + bias) / temp
    ref = torch.log_softmax(z, -1)
    assert torch.allclose(lp, ref.gather(-1, targets[:, None]).squeeze(-1), atol=1e-5)
    assert torch.allclose(ent, -(ref.exp() * ref).sum(-1), atol=1e-5)
    assert torch.allclose(sq, torch.log((ref.exp() ** 2).sum(-1)), atol=1e-5)
    assert torch.allclose(mean, z.mean(-1), atol=1e-5)
    assert torch.equal(top1, z.argmax(-1) == targets)
    (lp.sum() + ent.sum()).backward()
    g_h, g_w = hidden.grad.clone(), weight.grad.clone()
    hidden.grad = weight.grad = None
    (ref.gather(-1, targets[:, None]).sum() + (-(ref.exp() * ref).sum())).backward()
    assert torch.allclose(g_h, hidden.grad, atol=1e-4) and torch.allclose(g_w, weight.grad, atol=1e-4)


def test_unrequested_outputs_are_none_and_softcapping_applies():
    hidden, weight, targets = torch.randn(4, 8), torch.randn(10, 8), torch.tensor([1, 2, 3, 4])
    lp, ent, sq, mean, top1 = TorchChunkedLogProb.apply(hidden, weight, None, targets, 1.0, 32768, 5.0, 2.0, ("log_probs",))
    assert ent is None and sq is None and mean is None and top1 is None
    z = 5.0 * torch.tanh(2.0 * (hidden @ weight.t()) / 5.0)
    assert torch.allclose(lp, torch.log_softmax(z, -1).gather(-1, targets[:, None]).squeeze(-1), atol=1e-5)


def test_installed_only_where_trls_kernel_is_missing():
    import trl.trainer.utils as u

    ensure_logprob_head()
    assert u._ChunkedLogProbFunction is not None
    try:
        import triton  # noqa: F401

        assert u._ChunkedLogProbFunction is not TorchChunkedLogProb
    except ImportError:
        assert u._ChunkedLogProbFunction is TorchChunkedLogProb
