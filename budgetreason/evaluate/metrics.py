"""Scores the papers report: unbiased pass@k and the mean token entropy of their eq. 1."""

from __future__ import annotations

import math


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k (Chen et al. 2021): 1 − C(n−c, k) / C(n, k), for n samples of which c are correct.

    Computed as 1 − ∏_{i=n−c+1}^{n} (1 − k/i), which never forms the huge binomials and stays
    accurate for n up to thousands.

    >>> pass_at_k(16, 4, 1), round(pass_at_k(16, 4, 8), 4), pass_at_k(16, 0, 8), pass_at_k(16, 12, 8)
    (0.25, 0.9615, 0.0, 1.0)
    """
    if not 0 <= c <= n or k < 1 or k > n:
        raise ValueError(f"pass_at_k needs 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    prod = 1.0
    for i in range(n - c + 1, n + 1):
        prod *= 1.0 - k / i
    return 1.0 - prod


def pass_at_k_table(counts: list[tuple[int, int]], ks=(1, 8, 16)) -> dict[str, float]:
    """Mean pass@k over problems, given (samples, correct) per problem, for each k ≤ the fewest samples."""
    if not counts:
        return {}
    n_min = min(n for n, _ in counts)
    out = {}
    for k in ks:
        if k <= n_min:
            out[f"pass@{k}"] = sum(pass_at_k(n, c, k) for n, c in counts) / len(counts)
    return out


def token_entropies(logits) -> "torch.Tensor":  # noqa: F821
    """Per-position entropy −Σ_v π(v) log π(v) of the full next-token distribution, in nats (fp32)."""
    import torch

    logp = torch.log_softmax(logits.float(), dim=-1)
    return -(logp.exp() * logp).sum(-1)


def mean_token_entropy(logits, mask=None) -> float:
    """The micro-budget paper's eq. 1: H(π) = −(1/T) Σ_t Σ_v π(v|x, y<t) log π(v|x, y<t),
    averaged over the T response tokens (mask selects them)."""
    h = token_entropies(logits)
    if mask is not None:
        h = h[mask.bool()]
    return float(h.mean()) if h.numel() else float("nan")


def topk_entropy(logprobs: list[float]) -> float:
    """Entropy from the top-k log-probabilities vLLM returns: −Σ_topk p log p, plus the leftover mass
    treated as one outcome. A lower bound on the exact entropy (the tail is spread over many tokens)."""
    probs = [math.exp(lp) for lp in logprobs]
    h = -sum(p * lp for p, lp in zip(probs, logprobs) if p > 0)
    rest = max(0.0, 1.0 - sum(probs))
    if rest > 1e-12:
        h -= rest * math.log(rest)
    return h


def relative_change(before: float, after: float) -> float | None:
    """ΔH_rel in percent: 100·(after − before)/|before| (the paper's Table 2)."""
    if before is None or after is None or before == 0 or math.isnan(before) or math.isnan(after):
        return None
    return 100.0 * (after - before) / abs(before)
