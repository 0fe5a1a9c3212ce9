"""GPU catalog and detection (a stand-in nvidia-smi on PATH plays the driver)."""

from __future__ import annotations

import os
import stat

import pytest

from budgetreason.errors import BudgetError
from budgetreason.plan.hardware import catalog, detect_local_gpu, find_gpu, resolve_gpu

REQUIRED = ["t4", "l4", "a10g", "rtx3090", "rtx4090", "a40", "l40s", "rtx6000ada", "a100-40gb", "a100-80gb",
            "h100", "h200"]


def test_catalog_covers_the_cards_users_rent():
    gpus = catalog()
    assert set(REQUIRED) <= set(gpus)
    for g in gpus.values():
        assert g.vram_mib > 10_000 and g.tflops_16bit > 0 and g.mem_bw_gbs > 0
        assert g.price_usd_hr and g.price_source, f"{g.key} needs a price with its source"
        assert g.spec_source


def test_t4_has_no_bf16():
    t4 = catalog()["t4"]
    assert not t4.bf16 and t4.dtype == "float16"
    assert catalog()["a40"].dtype == "bfloat16"


@pytest.mark.parametrize("driver_name,key", [
    ("NVIDIA A40", "a40"), ("Tesla T4", "t4"), ("NVIDIA A100-SXM4-40GB", "a100-40gb"),
    ("NVIDIA A100-SXM4-80GB", "a100-80gb"), ("NVIDIA A100 80GB PCIe", "a100-80gb"), ("NVIDIA H100 80GB HBM3", "h100"),
    ("NVIDIA H100 PCIe", "h100-pcie"), ("NVIDIA GeForce RTX 4090", "rtx4090"), ("NVIDIA GeForce RTX 3090", "rtx3090"),
    ("NVIDIA RTX 6000 Ada Generation", "rtx6000ada"), ("NVIDIA L40S", "l40s"), ("NVIDIA L4", "l4"),
    ("NVIDIA A10G", "a10g"), ("NVIDIA H200", "h200"),
])
def test_driver_names_match_catalog(driver_name, key):
    assert find_gpu(driver_name).key == key


def test_unknown_gpu_lists_known_and_vram_flag():
    with pytest.raises(BudgetError) as e:
        resolve_gpu("v100")
    assert "a40" in str(e.value) and "--vram-gb" in str(e.value)


def test_vram_flag_serves_any_card():
    g = resolve_gpu(None, vram_gb=32)
    assert round(g.vram_mib * 1024**2 / 1e9) == 32
    assert resolve_gpu("a40", vram_gb=24).vram_mib < catalog()["a40"].vram_mib
    with pytest.raises(BudgetError):
        resolve_gpu("a40", vram_gb=-1)


def _fake_nvidia_smi(tmp_path, line: str):
    exe = tmp_path / "nvidia-smi"
    exe.write_text(f"#!/bin/sh\necho '{line}'\n")
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    return str(tmp_path)


def test_auto_reads_nvidia_smi(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", _fake_nvidia_smi(tmp_path, "NVIDIA A40, 46068") + os.pathsep + os.environ["PATH"])
    g = detect_local_gpu()
    assert g.key == "a40" and g.vram_mib == 46068


def test_auto_keeps_unknown_cards_by_memory(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", _fake_nvidia_smi(tmp_path, "NVIDIA Tesla V100-SXM2-32GB, 32768") + os.pathsep + os.environ["PATH"])
    g = resolve_gpu("auto")
    assert g.is_cuda and abs(g.vram_gib - 32.0) < 0.1


def test_auto_without_gpu_is_cpu(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no nvidia-smi anywhere
    import torch  # noqa: F401  (CPU build: torch.cuda reports no device)

    assert resolve_gpu("auto").key == "cpu"
