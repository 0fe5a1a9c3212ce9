"""`train --gpus N`: the files --dry-run writes, read by accelerate's, TRL's and vLLM-serve's own parsers,
and the process supervision (server, health check, trainers, stop) with stand-in programs on the CPU."""

from __future__ import annotations

import shlex
import socket
import sys
import textwrap
from dataclasses import replace

import pytest
import yaml

from budgetreason.errors import BudgetError
from budgetreason.train.config import RunConfig
from budgetreason.train.launch import prepare, supervise
from tests.conftest import run_cli

LLAMA8B = "meta-llama/Llama-3.1-8B-Instruct"


def _dry_run(tmp_path, *args):
    out = tmp_path / "run"
    r = run_cli("train", *args, "--output", str(out), "--dry-run")
    assert r.returncode == 0, r.stderr
    return out.with_name("run.launch"), r.stdout


def _grpo_config(config_path, tmp_path):
    """TRL's GRPOConfig from the written config through budgetreason's one translation. The card is
    marked as not CUDA so TrainingArguments accepts it here (only the precision flags differ)."""
    from budgetreason.plan.hardware import catalog
    from budgetreason.rewards.functions import preset
    from budgetreason.runs.folder import RunFolder
    from budgetreason.train.trainer_args import grpo_config
    from budgetreason.train.training import ResolvedRun

    cfg = RunConfig.from_yaml(config_path)
    run = ResolvedRun(config=cfg, plan=None, folder=RunFolder(tmp_path / "run"), backend=cfg.backend,
                      gpu=replace(catalog()[cfg.gpu], is_cuda=False), generation="vllm")
    return cfg, grpo_config(run, preset(cfg.rewards))


def test_dry_run_two_gpus_tina_is_valid_for_accelerate_trl_and_vllm_serve(tmp_path):
    from accelerate.commands.config.config_args import ClusterConfig, load_config_from_file
    from trl.scripts.vllm_serve import build_command, make_parser

    ldir, stdout = _dry_run(tmp_path, "--gpus", "2", "--gpu", "l40s", "--config", "tina-open-rs2")
    assert sorted(p.name for p in ldir.iterdir()) == ["accelerate.yaml", "config.yaml", "launch.sh", "layout.json"]
    assert not (tmp_path / "run").exists()  # the run folder stays the trainer's to create

    acc = load_config_from_file(str(ldir / "accelerate.yaml"))  # accelerate's own loader rejects unknown keys
    assert isinstance(acc, ClusterConfig)
    assert (acc.distributed_type.value, acc.num_processes, acc.mixed_precision) == ("NO", 1, "bf16")

    cfg, args = _grpo_config(ldir / "config.yaml", tmp_path)
    assert (args.use_vllm, args.vllm_mode, args.vllm_server_base_url) == (True, "server", "http://127.0.0.1:8000")
    assert (args.num_generations, cfg.lora_rank, args.beta, args.temperature) == (6, 32, 0.04, 0.7)
    assert args.generation_batch_size == cfg.per_device_train_batch_size * cfg.gradient_accumulation_steps
    assert args.generation_batch_size % args.num_generations == 0

    server_line, trainer_line = stdout.strip().splitlines()[-2:]
    server = shlex.split(server_line)
    assert server[:3] == ["CUDA_VISIBLE_DEVICES=0", "trl", "vllm-serve"]
    script, extra = make_parser().parse_args_and_config(args=server[3:], return_remaining_strings=True)
    assert extra == []  # every flag is one of trl vllm-serve's own
    assert (script.tensor_parallel_size, script.data_parallel_size, script.port) == (1, 1, 8000)
    assert script.max_model_len == cfg.max_prompt_length + cfg.max_completion_length
    assert script.model == cfg.model and 0 < script.gpu_memory_utilization < 1
    assert '{"backend": "nccl"}' in build_command(script)  # TRL enables the weight-sync engine itself
    trainer = shlex.split(trainer_line)
    assert trainer[:3] == ["CUDA_VISIBLE_DEVICES=1", "accelerate", "launch"]
    assert trainer[trainer.index("--config_file") + 1] == str(ldir / "accelerate.yaml")
    assert trainer[-3:] == ["-m", "budgetreason.train.launch", str(ldir / "config.yaml")]
    assert server_line in (ldir / "launch.sh").read_text() and trainer_line in (ldir / "launch.sh").read_text()


def test_dry_run_8b_on_four_a40_writes_a_deepspeed_config(tmp_path):
    from accelerate.commands.config.config_args import load_config_from_file

    ldir, stdout = _dry_run(tmp_path, "--gpus", "4", "--gpu", "a40", "--model", LLAMA8B, "--dataset", "open-rs",
                            "--hours", "24")
    acc = load_config_from_file(str(ldir / "accelerate.yaml"))
    assert acc.distributed_type.value == "DEEPSPEED" and acc.deepspeed_config["zero_stage"] in (2, 3)
    cfg, args = _grpo_config(ldir / "config.yaml", tmp_path)
    import json

    layout = json.loads((ldir / "layout.json").read_text())
    assert acc.num_processes == layout["trainer_gpus"] == len(stdout.splitlines()[-1].split()[0].split("=")[1].split(","))
    # TRL counts completions per step as micro-batch × processes × accumulation (world size 1 in this test).
    assert args.generation_batch_size * layout["trainer_gpus"] == layout["completions_per_step"]


def _recording_stub(bin_dir, name: str, record, serve: bool = False):
    """An executable `name` on PATH that records its argv, cwd and what its path arguments point at.

    The `trl` stand-in then answers /health on its --port as `trl vllm-serve` does once ready.
    """
    import json

    code = textwrap.dedent(f"""
        import http.server, json, os, sys
        args = sys.argv[1:]
        seen = {{"argv": args, "cwd": os.getcwd(), "pid": os.getpid(), "gpus": os.environ.get("CUDA_VISIBLE_DEVICES"),
                "files": {{a: os.path.isfile(a) for a in args if a.endswith((".yaml", ".jsonl"))}}}}
        for a in args:
            if a.endswith("config.yaml") and os.path.isfile(a):
                import yaml
                cfg = yaml.safe_load(open(a))
                seen["output"] = os.path.abspath(cfg["output"])
                seen["data_path"] = cfg["data_path"] and os.path.abspath(cfg["data_path"])
                seen["data_exists"] = bool(cfg["data_path"]) and os.path.isfile(cfg["data_path"])
        open({str(record)!r}, "w").write(json.dumps(seen))
        if {serve!r}:
            class H(http.server.BaseHTTPRequestHandler):
                def do_GET(self):
                    self.send_response(200 if self.path == "/health" else 404); self.end_headers()
                def log_message(self, *a): pass
            http.server.HTTPServer(("127.0.0.1", int(args[args.index("--port") + 1])), H).serve_forever()
    """)
    path = bin_dir / name
    path.write_text(f"#!{sys.executable}\n{code}")
    path.chmod(0o755)
    return lambda: json.loads(record.read_text())


def test_dry_run_launch_sh_runs_from_any_working_directory(tmp_path):
    """A scheduler starts launch.sh from $HOME or a spool folder: every path it hands on must still resolve."""
    import os
    import subprocess

    project, elsewhere, bin_dir = tmp_path / "project", tmp_path / "spool", tmp_path / "bin"
    for d in (project / "data", elsewhere, bin_dir):
        d.mkdir(parents=True)
    (project / "data" / "open-rs.jsonl").write_text('{"problem": "1+1?", "solution": "2"}\n')
    port = _free_port()
    r = run_cli("train", "--gpus", "2", "--gpu", "l40s", "--config", "tina-open-rs2", "--data", "data/open-rs.jsonl",
                "--port", str(port), "--dry-run", cwd=project)  # default output: a relative runs/...
    assert r.returncode == 0, r.stderr
    script = next(project.glob("runs/*.launch/launch.sh"))
    server = _recording_stub(bin_dir, "trl", tmp_path / "trl.json", serve=True)
    trainer = _recording_stub(bin_dir, "accelerate", tmp_path / "accelerate.json")
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    try:
        done = subprocess.run(["bash", str(script)], cwd=elsewhere, env=env, capture_output=True, text=True,
                              timeout=120)
    finally:
        if (tmp_path / "trl.json").exists():  # launch.sh's trap stops it; make sure nothing outlives the test
            try:
                os.kill(server()["pid"], 9)
            except ProcessLookupError:
                pass
    assert done.returncode == 0, done.stderr
    assert server()["argv"][:1] == ["vllm-serve"] and server()["gpus"] == "0"
    rec = trainer()
    assert rec["gpus"] == "1" and rec["argv"][:3] == ["launch", "--config_file", str(script.parent / "accelerate.yaml")]
    assert rec["argv"][-1] == str(script.parent / "config.yaml")
    assert rec["cwd"] == str(project) == server()["cwd"]  # module:function rewards import from here, as planned
    assert rec["files"] and all(rec["files"].values()), rec  # accelerate.yaml and config.yaml found
    run_dir = project / "runs" / script.parent.name.removesuffix(".launch")
    assert rec["output"] == str(run_dir)  # the run folder beside its launch folder, not under the spool
    assert rec["data_exists"] and rec["data_path"] == str(project / "data" / "open-rs.jsonl")
    assert not (elsewhere / "runs").exists()


def test_dry_run_wait_reaches_the_trainers_command(tmp_path):
    _, plain = _dry_run(tmp_path / "a", "--gpus", "2", "--gpu", "l40s", "--config", "tina-open-rs2")
    _, waiting = _dry_run(tmp_path / "b", "--gpus", "2", "--gpu", "l40s", "--config", "tina-open-rs2", "--wait")
    assert shlex.split(plain.splitlines()[-1])[-1].endswith("config.yaml")
    assert shlex.split(waiting.splitlines()[-1])[-1] == "--wait"  # rank 0 waits for the folder's lock


@pytest.mark.parametrize("wait", [True, False])
def test_gpus_with_a_busy_run_folder_waits_or_refuses_before_starting_the_server(tmp_path, wait):
    """Another run holds the folder: --wait starts nothing (no vLLM server holding GPUs) until it ends,
    then runs; without --wait it is one line, exit 2, and nothing was started."""
    import os
    import subprocess

    from budgetreason.runs.folder import RunFolder

    bin_dir, out = tmp_path / "bin", tmp_path / "run"
    bin_dir.mkdir()
    server = _recording_stub(bin_dir, "trl", tmp_path / "trl.json", serve=True)
    trainer = _recording_stub(bin_dir, "accelerate", tmp_path / "accelerate.json")
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}", COLUMNS="200")
    cmd = [sys.executable, "-m", "cli.main", "train", "--gpus", "2", "--gpu", "l40s", "--config", "tina-open-rs2",
           "--output", str(out), "--port", str(_free_port())] + (["--wait"] if wait else [])
    holder = RunFolder(out, writer=True).locked()
    holder.__enter__()  # this test process is "the other run"
    held = True
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        if not wait:
            _, err = proc.communicate(timeout=300)
            assert proc.returncode == 2 and "in use by another run" in err and err.count("\n") == 1, err
            assert not (tmp_path / "trl.json").exists() and not (tmp_path / "accelerate.json").exists()
            return
        seen = ""
        for line in proc.stderr:  # ends at the CLI's exit if it never waits
            seen += line
            if "waiting for the run in" in line:
                break
        assert "waiting for the run in" in seen, seen
        assert proc.poll() is None and not (tmp_path / "trl.json").exists()  # nothing started while waiting
        holder.__exit__(None, None, None)
        held = False
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        assert server()["argv"][0] == "vllm-serve" and trainer()["argv"][-1] == "--wait"
    finally:
        if held:
            holder.__exit__(None, None, None)
        proc.kill()
        proc.wait()
        if (tmp_path / "trl.json").exists():
            try:
                os.kill(server()["pid"], 9)
            except ProcessLookupError:
                pass


def test_the_same_command_writes_the_same_launch_so_a_rerun_resumes(tmp_path):
    a = prepare(2, "tina-open-rs2", gpu="l40s", output=str(tmp_path / "r"))
    b = prepare(2, "tina-open-rs2", gpu="l40s", output=str(tmp_path / "r"))
    assert a.config == b.config and a.shell_lines() == b.shell_lines()
    assert a.config.output == str(tmp_path / "r")


@pytest.mark.parametrize("args,needle", [
    (["--gpus", "2", "--gpu", "l40s", "--config", "tina-open-rs2", "--backend", "unsloth"], "single-GPU only"),
    (["--gpus", "2", "--gpu", "l40s", "--config", "tina-open-rs2", "--load-in-4bit"], "drop --load-in-4bit"),
    (["--gpus", "2", "--gpu", "t4", "--model", LLAMA8B, "--hours", "2"], "does not fit"),
    (["--gpu", "l40s", "--config", "tina-open-rs2"], "give it with --gpus"),
    # review #4: TRL's server mode has no vLLM engine in the trainer processes to validate on
    (["--gpus", "2", "--gpu", "l40s", "--config", "tina-open-rs2", "--val-every", "5"],
     "--val-every with --gpus 2: validation during training samples on the trainer's colocated vLLM engine"),
])
def test_bad_launches_one_line_exit_2(tmp_path, args, needle):
    r = run_cli("train", *args, "--dry-run", "--output", str(tmp_path / "run"))
    assert r.returncode == 2 and needle in r.stderr and r.stderr.count("\n") == 1, r.stderr
    assert not (tmp_path / "run.launch").exists()


def test_a_recipes_validation_is_turned_off_under_gpus_and_said(tmp_path):
    """micro-budget validates every so often; under --gpus there is no trainer engine, so the run goes without it."""
    r = run_cli("train", "--gpus", "2", "--gpu", "l40s", "--config", "micro-budget", "--dry-run",
                "--output", str(tmp_path / "run"))
    assert r.returncode == 0, r.stderr
    assert "note: validation during training is off (the config's val_every: auto)" in r.stderr
    cfg = yaml.safe_load((tmp_path / "run.launch" / "config.yaml").read_text())
    assert cfg["val_every"] is None


# ---- supervision with stand-ins for vLLM and the trainers ---------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _server(tmp_path, port: int, delay: float = 0.5) -> list[str]:
    """A real HTTP server that answers /health with 200 after `delay` seconds, like vLLM after start-up."""
    code = textwrap.dedent(f"""
        import http.server, os, time
        open({str(tmp_path / 'server.pid')!r}, 'w').write(str(os.getpid()))
        time.sleep({delay})
        class H(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200 if self.path == '/health' else 404); self.end_headers()
            def log_message(self, *a): pass
        http.server.HTTPServer(('127.0.0.1', {port}), H).serve_forever()
    """)
    return [sys.executable, "-c", code]


def _gone(pid_file) -> bool:
    import os

    try:
        os.kill(int(pid_file.read_text()), 0)
    except ProcessLookupError:
        return True
    return False


def test_supervise_waits_for_health_runs_trainers_and_stops_the_server(tmp_path):
    port = _free_port()
    trainer = [sys.executable, "-c", textwrap.dedent(f"""
        import os, sys, urllib.request
        ok = urllib.request.urlopen('http://127.0.0.1:{port}/health').status
        open({str(tmp_path / 'trainer.txt')!r}, 'w').write(f"{{ok}} {{os.environ['CUDA_VISIBLE_DEVICES']}}")
        sys.exit(3)
    """)]
    rc = supervise(_server(tmp_path, port), trainer, server_env={"CUDA_VISIBLE_DEVICES": "0"},
                   trainer_env={"CUDA_VISIBLE_DEVICES": "1,2"}, health_url=f"http://127.0.0.1:{port}/health",
                   log_dir=tmp_path / "launch", start_timeout_s=60, grace_s=10, poll_s=0.2)
    assert rc == 3  # the trainers' exit code
    assert (tmp_path / "trainer.txt").read_text() == "200 1,2"  # started only once the server was healthy
    assert _gone(tmp_path / "server.pid")
    assert (tmp_path / "launch" / "server.log").exists()


def test_supervise_fails_in_one_line_when_the_server_dies_first(tmp_path):
    marker = tmp_path / "trainer.txt"
    with pytest.raises(BudgetError, match="exited with code 4 before it was ready"):
        supervise([sys.executable, "-c", "import sys; sys.exit(4)"],
                  [sys.executable, "-c", f"open({str(marker)!r}, 'w')"], server_env={}, trainer_env={},
                  health_url=f"http://127.0.0.1:{_free_port()}/health", log_dir=tmp_path, start_timeout_s=30,
                  grace_s=5, poll_s=0.2)
    assert not marker.exists()


def test_supervise_gives_up_on_a_server_that_never_answers(tmp_path):
    port = _free_port()
    with pytest.raises(BudgetError, match="did not answer"):
        supervise(_server(tmp_path, port, delay=60), [sys.executable, "-c", "pass"], server_env={}, trainer_env={},
                  health_url=f"http://127.0.0.1:{port}/health", log_dir=tmp_path, start_timeout_s=1, grace_s=5,
                  poll_s=0.2)
    assert _gone(tmp_path / "server.pid")


def _alive(pid: int) -> bool:
    import os

    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.parametrize("signame", ["SIGTERM", "SIGHUP"])
def test_supervisor_signalled_stops_the_server_and_lets_the_trainers_save(tmp_path, signame):
    """A scheduler's SIGTERM (or a closed terminal's SIGHUP) to the supervisor: the trainers get SIGTERM
    (GracefulStop saves), then both process groups are stopped; nothing keeps holding a GPU."""
    import json
    import os
    import signal
    import subprocess
    import time

    from tests.conftest import ROOT

    port = _free_port()
    ready, saved = tmp_path / "trainer.pid", tmp_path / "trainer.txt"
    trainer = [sys.executable, "-c", textwrap.dedent(f"""
        import os, signal, sys, time
        def save(signum, frame):  # what GracefulStop does: finish the step, save, exit
            open({str(saved)!r}, "w").write(signal.Signals(signum).name)
            sys.exit(0)
        signal.signal(signal.SIGTERM, save)
        open({str(ready)!r} + ".tmp", "w").write(str(os.getpid()))
        os.replace({str(ready)!r} + ".tmp", {str(ready)!r})  # the handler is in place once this file is
        while True:
            time.sleep(0.1)
    """)]
    supervisor = textwrap.dedent("""
        import json, pathlib, sys
        from budgetreason.train.launch import supervise
        server, trainer, url, log = json.loads(sys.argv[1])
        sys.exit(supervise(server, trainer, server_env={}, trainer_env={}, health_url=url,
                           log_dir=pathlib.Path(log), start_timeout_s=60, grace_s=30, poll_s=0.2))
    """)
    spec = json.dumps([_server(tmp_path, port), trainer, f"http://127.0.0.1:{port}/health", str(tmp_path / "launch")])
    proc = subprocess.Popen([sys.executable, "-c", supervisor, spec], env=dict(os.environ, PYTHONPATH=str(ROOT)),
                            stderr=subprocess.PIPE, text=True)
    pids = []
    try:
        while not ready.exists() and proc.poll() is None:  # the trainers start once the server is healthy
            time.sleep(0.1)
        assert proc.poll() is None, proc.stderr.read()
        pids = [int(ready.read_text()), int((tmp_path / "server.pid").read_text())]
        proc.send_signal(getattr(signal, signame))
        rc = proc.wait(timeout=120)
        assert saved.exists() and saved.read_text() == "SIGTERM"  # forwarded, so the run saved
        assert rc == 128 + getattr(signal, signame), proc.stderr.read()
        deadline = time.monotonic() + 30  # reaped by init: give the kernel a moment
        while any(_alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(_alive(p) for p in pids)  # neither the server nor the trainers outlive it
    finally:
        proc.kill()
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


@pytest.mark.gpu
def test_two_gpu_launch_trains_two_steps(tmp_path):
    """On a machine with two CUDA GPUs and the model cached: a real server + trainer run."""
    import torch

    if torch.cuda.device_count() < 2:
        pytest.skip("needs two CUDA GPUs")
    r = run_cli("train", "--gpus", "2", "--model", "Qwen/Qwen2.5-0.5B-Instruct", "--dataset", "open-rs",
                "--max-steps", "2", "--max-completion", "256", "--k", "4", "--output", str(tmp_path / "run"),
                timeout=1800)
    assert r.returncode == 0, r.stderr[-3000:]
    assert (tmp_path / "run" / "adapter").is_dir()
