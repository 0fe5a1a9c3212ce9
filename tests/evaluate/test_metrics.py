"""pass@k against brute force, and entropy against a direct computation."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from budgetreason.evaluate.metrics import mean_token_entropy, pass_at_k, pass_at_k_table, relative_change, topk_entropy


def brute_force(n: int, c: int, k: int) -> float:
    """Fraction of all k-subsets of n samples (c correct) that contain a correct one."""
    samples = [1] * c + [0] * (n - c)
    subsets = list(itertools.combinations(range(n), k))
    return sum(any(samples[i] for i in s) for s in subsets) / len(subsets)


@pytest.mark.parametrize("n", range(1, 13))
def test_pass_at_k_matches_enumeration(n):
    for c in range(n + 1):
        for k in range(1, n + 1):
            assert pass_at_k(n, c, k) == pytest.approx(brute_force(n, c, k), abs=1e-12)


def test_pass_at_k_is_stable_for_large_n():
    exact = 1 - math.comb(1024 - 3, 16) / math.comb(1024, 16)
    assert pass_at_k(1024, 3, 16) == pytest.approx(exact, rel=1e-12)
    assert pass_at_k(1024, 1024, 1) == 1.0 and pass_at_k(1024, 0, 16) == 0.0
    assert 0 < pass_at_k(1024, 1, 1) < 0.001


def test_pass_at_k_rejects_nonsense():
    with pytest.raises(ValueError):
        pass_at_k(4, 5, 1)
    with pytest.raises(ValueError):
        pass_at_k(4, 1, 5)


def test_table_reports_only_k_up_to_n():
    t = pass_at_k_table([(8, 2), (8, 0)], ks=(1, 8, 16))
    assert set(t) == {"pass@1", "pass@8"}
    assert t["pass@1"] == pytest.approx((2 / 8 + 0) / 2)
    assert t["pass@8"] == pytest.approx(0.5)


def test_entropy_equals_direct_formula():
    torch.manual_seed(0)
    logits = torch.randn(5, 7, 50)
    mask = torch.zeros(5, 7, dtype=torch.bool)
    mask[:, 3:] = True
    p = torch.softmax(logits, -1)
    direct = (-(p * p.log()).sum(-1))[mask].mean().item()
    assert mean_token_entropy(logits, mask) == pytest.approx(direct, rel=1e-6)
    uniform = torch.zeros(1, 1, 64)
    assert mean_token_entropy(uniform) == pytest.approx(math.log(64), rel=1e-6)


def test_topk_entropy_is_a_lower_bound_and_exact_when_complete():
    p = torch.softmax(torch.randn(100), -1)
    exact = float(-(p * p.log()).sum())
    top = torch.topk(p, 5).values
    assert topk_entropy(top.log().tolist()) <= exact + 1e-9
    assert topk_entropy(p.log().tolist()) == pytest.approx(exact, rel=1e-5)


def test_relative_change_in_percent():
    assert relative_change(2.0, 1.0) == -50.0
    assert relative_change(0.0, 1.0) is None
