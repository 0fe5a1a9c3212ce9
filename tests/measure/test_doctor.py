"""`budgetreason doctor` on this CPU machine, and its checks of the version matrix."""

from __future__ import annotations

import json

from budgetreason.measure import doctor as doc
from tests.conftest import run_cli

NAMES = {"python", "cuda", "driver", "bf16", "gpu_memory", "disk", "torch", "transformers", "trl", "peft",
         "math-verify", "unsloth", "vllm", "bitsandbytes"}


def test_doctor_on_a_cpu_says_no_gpu_and_what_still_works(tmp_path):
    r = run_cli("doctor", "--output", str(tmp_path))
    assert r.returncode == 1, r.stderr[-2000:]
    lines = r.stdout.splitlines()
    assert any(x.startswith("FAIL cuda: no CUDA GPU is present") and "fix:" in x for x in lines)
    assert "what still works here" in r.stdout and "budgetreason plan --gpu a40" in r.stdout
    assert any(x.startswith("ok   trl: 1.15.0") for x in lines)  # this machine's matrix holds
    assert lines[-1].startswith("not ready")


def test_doctor_json_names_every_check(tmp_path):
    r = run_cli("doctor", "--json", "--output", str(tmp_path / "not" / "yet"))
    assert r.returncode == 1
    report = json.loads(r.stdout)
    checks = {c["name"]: c for c in report["checks"]}
    assert set(checks) == NAMES and report["ok"] is False and report["still_works"]
    assert checks["cuda"]["status"] == "fail" and checks["cuda"]["fix"]
    assert checks["disk"]["status"] in ("ok", "warn") and "GiB free" in checks["disk"]["detail"]
    assert all(c["status"] in ("ok", "warn", "fail", "skip") for c in checks.values())


def test_a_library_off_the_matrix_is_a_problem_with_its_fix(monkeypatch):
    real = doc.versions.installed
    monkeypatch.setattr(doc.versions, "installed", lambda n: "1.14.0" if n == "trl" else real(n))
    monkeypatch.setattr(doc, "_try_imports", lambda mods: dict.fromkeys(mods))
    checks = {c.name: c for c in doc._libraries(cuda=False)}
    assert checks["trl"].status == "fail" and checks["trl"].fix == "pip install 'trl==1.15.0'"
    assert checks["peft"].status == "ok"


def test_on_a_gpu_machine_missing_vllm_warns_and_missing_bitsandbytes_fails(monkeypatch):
    real = doc.versions.installed
    fake = {"unsloth": "2026.10.9", "vllm": None, "bitsandbytes": None}
    monkeypatch.setattr(doc.versions, "installed", lambda n: fake[n] if n in fake else real(n))
    monkeypatch.setattr(doc, "_try_imports", lambda mods: {m: ("ImportError: broken" if m == "peft" else None)
                                                            for m in mods})
    checks = {c.name: c for c in doc._libraries(cuda=True)}
    assert checks["vllm"].status == "warn" and "--generation hf" in checks["vllm"].detail
    assert checks["bitsandbytes"].status == "fail" and "16-bit LoRA" in checks["bitsandbytes"].detail
    assert checks["unsloth"].status == "ok"
    assert checks["peft"].status == "fail" and "does not import" in checks["peft"].detail
