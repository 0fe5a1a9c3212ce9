"""torch's CPU thread count: the cores this process may use (affinity, cgroup quota), the load average only
where it describes those cores. Fake cgroup files from tmp_path; the rule itself is a pure function."""

from __future__ import annotations

import doctest

import pytest

from budgetreason.models.backends import hf
from budgetreason.models.backends.hf import cgroup_cpus, cpu_threads


def _files(root, files: dict[str, str]):
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


@pytest.fixture
def no_cgroup(tmp_path):
    """A cgroup tree with no CPU limit anywhere (and a process at its root)."""
    return _files(tmp_path / "cg", {"cgroup.procs": "", "self": "0::/\n"})


def test_a_hosts_load_does_not_starve_a_container_of_its_own_cores(no_cgroup):
    """16 cores of a 64-core host (a cpuset): load 40 is the host's, not this container's (was 1 thread)."""
    assert cpu_threads(cpus=16, host_cpus=64, load=40.0, cgroup_root=no_cgroup, self_cgroup=no_cgroup / "self") == 16


def test_the_load_average_still_caps_a_shared_box_that_is_all_ours_to_see(no_cgroup):
    kw = {"cgroup_root": no_cgroup, "self_cgroup": no_cgroup / "self"}
    assert [cpu_threads(cpus=2, host_cpus=2, load=load, **kw) for load in (0.1, 0.6, 1.2, 14.0)] == [2, 1, 1, 1]
    assert cpu_threads(cpus=16, host_cpus=16, load=3.0, **kw) == 13


def test_cgroup_v2_quota_is_the_core_count(tmp_path):
    root = _files(tmp_path, {"cpu.max": "400000 100000\n", "self": "0::/\n"})
    assert cgroup_cpus(root, root / "self") == 4.0
    # docker --cpus 4 on a 16-core host at load 40: four threads, the host's load is not read as ours
    assert cpu_threads(cpus=16, host_cpus=16, load=40.0, cgroup_root=root, self_cgroup=root / "self") == 4
    (root / "cpu.max").write_text("max 100000\n")
    assert cgroup_cpus(root, root / "self") is None


def test_cgroup_v2_nested_limit_of_a_parent_applies(tmp_path):
    root = _files(tmp_path, {"user.slice/cpu.max": "150000 100000\n", "user.slice/job/cpu.max": "max 100000\n",
                             "self": "0::/user.slice/job\n"})
    assert cgroup_cpus(root, root / "self") == 1.5
    assert cpu_threads(cpus=8, host_cpus=8, load=0.0, cgroup_root=root, self_cgroup=root / "self") == 1


def test_cgroup_v1_cfs_quota(tmp_path):
    root = _files(tmp_path, {"cpu,cpuacct/cpu.cfs_quota_us": "200000\n", "cpu,cpuacct/cpu.cfs_period_us": "100000\n",
                             "self": "4:cpu,cpuacct:/docker/abc\n0::/\n"})  # the container's own cgroup is the mount
    assert cgroup_cpus(root, root / "self") == 2.0
    assert cpu_threads(cpus=32, host_cpus=32, load=50.0, cgroup_root=root, self_cgroup=root / "self") == 2
    (root / "cpu,cpuacct/cpu.cfs_quota_us").write_text("-1\n")
    assert cgroup_cpus(root, root / "self") is None


def test_this_machine_gives_a_count_within_its_cores():
    import os

    assert 1 <= cpu_threads() <= len(os.sched_getaffinity(0))


def test_budgetreason_threads_fixes_the_count(monkeypatch):
    import torch

    before = torch.get_num_threads()
    monkeypatch.setenv("BUDGETREASON_THREADS", "3")
    try:
        assert hf.set_cpu_threads() == 3
    finally:
        torch.set_num_threads(before)


def test_docstring_examples_run():
    failures, tried = doctest.testmod(hf)
    assert failures == 0 and tried > 0
