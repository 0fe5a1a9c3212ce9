"""Small, documented adjustments so TRL's GRPO runs where its fast paths cannot.

TRL 1.15 computes per-token log-probabilities with a fused, chunked LM head whose kernel
is written in Triton (``trl/kernels/chunked_logprob.py``). Triton has no CPU build, so on a
machine without it TRL leaves ``_ChunkedLogProbFunction`` as ``None`` and GRPO fails at its
first forward pass. :func:`ensure_logprob_head` installs a plain-PyTorch replacement with the
same contract in that case only; on a GPU with Triton, TRL's kernel is used untouched.
"""

from __future__ import annotations

#: Tokens per projection tile in the fallback: bounds the fp32 logits it materialises.
FALLBACK_TOKEN_CHUNK = 512


class TorchChunkedLogProb:
    """Drop-in for TRL's ``_ChunkedLogProbFunction.apply`` in plain PyTorch (autograd does backward).

    ``apply(hidden [N,H], weight [V,H], bias [V]|None, targets [N], temperature, chunk_size,
    final_logit_softcapping, logit_scale, outputs)`` returns ``(log_probs, entropy,
    log_sum_sq_probs, mean_logits, is_top1)``, each ``[N]`` or ``None`` when not requested,
    exactly as the Triton kernel does. Logits are computed in fp32, 512 tokens at a time.
    """

    @staticmethod
    def apply(hidden, weight, bias, targets, temperature, chunk_size, final_logit_softcapping=None,
              logit_scale=1.0, outputs=("log_probs",)):
        import torch

        logps, ents, sqs, means, top1 = [], [], [], [], []
        for start in range(0, hidden.shape[0], FALLBACK_TOKEN_CHUNK):
            h = hidden[start:start + FALLBACK_TOKEN_CHUNK].float()
            z = h @ weight.float().t()
            if bias is not None:
                z = z + bias.float()
            z = z * logit_scale
            if final_logit_softcapping:
                z = final_logit_softcapping * torch.tanh(z / final_logit_softcapping)
            z = z / temperature
            lsm = torch.log_softmax(z, dim=-1)
            t = targets[start:start + FALLBACK_TOKEN_CHUNK]
            logps.append(lsm.gather(-1, t.unsqueeze(-1)).squeeze(-1))
            if "entropy" in outputs:
                ents.append(-(lsm.exp() * lsm).sum(-1))
            if "log_sum_sq_probs" in outputs:
                sqs.append(torch.logsumexp(2 * lsm, dim=-1).detach())
            if "mean_logits" in outputs:
                means.append(z.mean(-1).detach())
            if "is_top1" in outputs:
                top1.append((z.argmax(-1) == t).detach())

        def cat(xs):
            return torch.cat(xs) if xs else None

        return cat(logps), cat(ents), cat(sqs), cat(means), cat(top1)


def ensure_logprob_head() -> bool:
    """Install the PyTorch fallback if TRL's Triton kernel is unavailable. Returns True if installed."""
    import trl.trainer.utils as trl_utils

    if getattr(trl_utils, "_ChunkedLogProbFunction", None) is None:
        trl_utils._ChunkedLogProbFunction = TorchChunkedLogProb
        return True
    return False
