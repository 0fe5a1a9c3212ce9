"""``train --gpus N``: start TRL's vLLM server and ``accelerate launch`` the trainers, or write the commands.

The layout comes from budgetreason.plan.layout. ``prepare`` turns it into three files in a launch
folder beside the run folder (the run folder itself stays the trainer's, so resuming works
as on one GPU): ``accelerate.yaml`` in the schema of TRL's shipped accelerate configs,
``config.yaml`` (the resolved run configuration every training process reads) and
``launch.sh`` with the exact commands. ``supervise`` runs them: the server on the first G
GPUs, a wait on its ``/health`` endpoint (TRL's VLLMClient polls the same one), the trainers
on the others, and both stopped when either ends, on Ctrl-C, or on SIGTERM/SIGHUP. Re-running the same command
resumes: the trainers call ``budgetreason.train`` on the same run folder.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

from budgetreason.errors import BudgetError
from budgetreason.train.config import SERVER_MODE_VALIDATION, RunConfig, slug

DEFAULT_PORT = 8000
#: TRL's default port for the NCCL weight-transfer group (GRPOConfig.vllm_group_port).
GROUP_PORT = 51216
#: vLLM loads the weights and captures CUDA graphs before /health answers: minutes for a 7B model.
SERVER_START_TIMEOUT_S = 900.0
#: Seconds given to a process to save and exit after SIGINT/SIGTERM before it is killed.
STOP_GRACE_S = 120.0


@dataclass
class LaunchPlan:
    """Everything `train --gpus N` runs: the layout, the resolved config, the files and commands."""

    layout: object
    config: RunConfig
    launch_dir: Path
    accelerate_config: dict
    server_command: list[str]
    trainer_command: list[str]
    server_env: dict[str, str]
    trainer_env: dict[str, str]
    health_url: str
    #: Where `prepare` ran: launch.sh starts with a cd here, so the config's relative inputs (a --data file,
    #: a module:function reward, a model folder) resolve as they did, whatever folder a scheduler starts in.
    workdir: Path = field(default_factory=Path.cwd)
    #: --wait: if another run holds the run folder, wait for it to end (the supervisor before it starts
    #: anything, and rank 0 for the lock, which the trainer command's --wait passes on).
    wait: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def accelerate_path(self) -> Path:
        return self.launch_dir / "accelerate.yaml"

    @property
    def config_path(self) -> Path:
        return self.launch_dir / "config.yaml"

    @property
    def layout_path(self) -> Path:
        return self.launch_dir / "layout.json"

    @property
    def script_path(self) -> Path:
        return self.launch_dir / "launch.sh"

    def shell_lines(self) -> list[str]:
        """The two commands as a person types them, environment first."""
        def line(env: dict, cmd: list[str]) -> str:
            return " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items()) + " " + shlex.join(cmd)

        return [line(self.server_env, self.server_command), line(self.trainer_env, self.trainer_command)]

    def write(self) -> list[Path]:
        """Write accelerate.yaml, config.yaml, layout.json and launch.sh (each via a rename)."""
        import yaml

        self.launch_dir.mkdir(parents=True, exist_ok=True)
        server, trainer = self.shell_lines()
        script = "\n".join([
            "#!/usr/bin/env bash",
            f"# budgetreason train --gpus {self.layout.num_gpus}: {self.layout.server_gpus} GPU(s) serve vLLM, "
            f"{self.layout.trainer_gpus} train ({_distributed(self.layout)}).",
            "# Start the server, wait until its /health answers, then start the trainers; stop the server after.",
            "set -euo pipefail",
            f"cd {shlex.quote(str(self.workdir))}  # where the launch was prepared: relative inputs resolve from here",
            f"{server} &",
            "SERVER=$!",
            "trap 'kill $SERVER 2>/dev/null || true' EXIT",
            f"until curl -sf {self.health_url} > /dev/null; do",
            "  kill -0 $SERVER 2>/dev/null || { echo 'vLLM server exited before it was ready' >&2; exit 1; }",
            "  sleep 5",
            "done",
            trainer,
            "",
        ])
        files = {self.accelerate_path: yaml.safe_dump(self.accelerate_config, sort_keys=True),
                 self.config_path: self.config.to_yaml(),
                 self.layout_path: json.dumps(self.layout.to_dict(), indent=2),
                 self.script_path: script}
        for path, text in files.items():
            tmp = path.with_name(path.name + ".tmp")
            tmp.write_text(text)
            os.replace(tmp, path)
        self.script_path.chmod(0o755)
        return list(files)


def _distributed(layout) -> str:
    from budgetreason.plan.layout import distributed_name

    return distributed_name(layout.zero_stage, layout.trainer_gpus)


def accelerate_config(layout) -> dict:
    """accelerate's ClusterConfig for the trainer processes, as TRL's accelerate_configs/*.yaml write it.

    One process: distributed_type NO; DDP: MULTI_GPU; ZeRO: DEEPSPEED with the stage, no offload
    (zero3_init_flag and 16-bit saving for stage 3, as TRL's zero3.yaml).
    """
    bf16 = layout.gpu.bf16
    cfg = {
        "compute_environment": "LOCAL_MACHINE", "debug": False, "downcast_bf16": "no", "machine_rank": 0,
        "main_training_function": "main", "mixed_precision": "bf16" if bf16 else "fp16", "num_machines": 1,
        "num_processes": layout.trainer_gpus, "rdzv_backend": "static", "same_network": True, "tpu_env": [],
        "tpu_use_cluster": False, "tpu_use_sudo": False, "use_cpu": False,
    }
    if layout.trainer_gpus == 1:
        cfg |= {"distributed_type": "NO", "gpu_ids": "all"}
    elif layout.zero_stage == 0:
        cfg |= {"distributed_type": "MULTI_GPU", "gpu_ids": "all"}
    else:
        ds = {"deepspeed_multinode_launcher": "standard", "offload_optimizer_device": "none",
              "offload_param_device": "none", "zero3_init_flag": layout.zero_stage == 3,
              "zero_stage": layout.zero_stage}
        if layout.zero_stage == 3:
            ds["zero3_save_16bit_model"] = True
        cfg |= {"distributed_type": "DEEPSPEED", "deepspeed_config": ds}
    return cfg


def server_command(layout, model: str, port: int) -> list[str]:
    """``trl vllm-serve`` with the layout's tensor parallelism and memory share (trl/scripts/vllm_serve.py).

    TRL 1.15 execs vLLM's own server with its NCCL weight-transfer engine enabled; data parallelism
    stays 1 (TRL: "For dense models, keep this at 1").
    """
    from budgetreason.models.backends import model_path

    return ["trl", "vllm-serve", "--model", model_path(model),
            "--tensor_parallel_size", str(layout.tensor_parallel_size), "--data_parallel_size", "1",
            "--host", "127.0.0.1", "--port", str(port),
            "--gpu_memory_utilization", f"{layout.vllm_gpu_memory_utilization:.2f}",
            "--max_model_len", str(layout.shape.seq_len), "--dtype", layout.gpu.dtype]


def server_settings(port: int) -> dict:
    """GRPOConfig fields for server mode (trl/trainer/grpo_config.py: vllm_server_*)."""
    return {"use_vllm": True, "vllm_mode": "server", "vllm_server_base_url": f"http://127.0.0.1:{port}",
            "vllm_server_timeout": SERVER_START_TIMEOUT_S, "vllm_group_port": GROUP_PORT}


def plan_for_cli(gpus: int, config: str | None = None, **overrides):
    """`plan --gpus N [--config RECIPE]`: the recipe's settings (if any) under the flags, then the layout."""
    from budgetreason.plan.layout import layout_for_config
    from budgetreason.train.recipes import load_recipe

    base = load_recipe(config) if config else {}
    gpu = overrides.pop("gpu", "auto")
    if gpu != "auto" or "gpu" not in base:
        base["gpu"] = gpu
    base.update({k: v for k, v in overrides.items() if v is not None})
    return layout_for_config(gpus, RunConfig.from_dict(base))


def prepare(gpus: int, config: RunConfig | dict | str | None = None, *, port: int = DEFAULT_PORT,
            launch_dir: str | None = None, wait: bool = False, **overrides) -> LaunchPlan:
    """Plan the layout for the run the flags describe and build its files and commands (nothing written yet)."""
    import dataclasses

    from budgetreason.plan.layout import layout_for_config
    from budgetreason.train.training import DEFAULT_LR, _user_config

    cfg = _user_config(config, overrides)
    hours = cfg.budget_hours
    if cfg.budget_usd is not None:
        from budgetreason.plan.hardware import resolve_gpu

        price = resolve_gpu(cfg.gpu, cfg.vram_gb).price_usd_hr
        if not price:
            raise BudgetError("This GPU has no catalog price; give --hours instead of --budget-usd.")
        hours = cfg.budget_usd / (price * gpus)
    if hours is None and cfg.max_steps is None:
        raise BudgetError("Give a budget: --hours H, --budget-usd D, or --max-steps N.")
    if cfg.backend not in ("auto", "trl"):
        raise BudgetError(f"--gpus runs transformers + PEFT trainers with TRL's vLLM server; --backend {cfg.backend} "
                          "is single-GPU only (leave --backend out).")
    if getattr(cfg, "generation", "auto") == "hf":
        raise BudgetError("--gpus generates on TRL's vLLM server; drop --generation hf.")
    if cfg.load_in_4bit:
        raise BudgetError("--gpus trains 16-bit base weights (TRL's vLLM server loads 16-bit); drop --load-in-4bit.")
    notes = []
    if cfg.val_every and overrides.get("val_every") is not None:
        raise BudgetError(f"--val-every with --gpus {gpus}: {SERVER_MODE_VALIDATION}")
    if cfg.val_every:  # the recipe asked for it, not the user: the run can still go, without it
        notes.append(f"validation during training is off (the config's val_every: {cfg.val_every}): with --gpus TRL "
                     "generates on its vLLM server and the trainers have no engine to validate on; evaluate the "
                     "run's checkpoints with `budgetreason eval`.")
        cfg = dataclasses.replace(cfg, val_every=None)
    layout = layout_for_config(gpus, cfg, hours)
    if not layout.fits:
        raise BudgetError(f"{cfg.model} does not fit {gpus}× {layout.gpu.name}: {layout.warnings[-1]}. "
                          f"Try {'; '.join(layout.suggestions)}.")
    c = layout.config
    dataset = cfg.dataset or "open-rs"
    resolved = dataclasses.replace(
        cfg, model=cfg.model, dataset=dataset, gpu=layout.gpu.key, backend="trl", budget_hours=hours,
        budget_usd=None, lora_rank=c["lora_rank"], lora_alpha=c["lora_alpha"],
        lora_target_modules=c["lora_target_modules"], num_generations=c["num_generations"],
        prompts_per_step=layout.completions_per_step // c["num_generations"],
        per_device_train_batch_size=c["per_device_train_batch_size"],
        gradient_accumulation_steps=c["gradient_accumulation_steps"], max_prompt_length=c["max_prompt_length"],
        max_completion_length=c["max_completion_length"], load_in_4bit=False,
        vllm_gpu_memory_utilization=c["vllm_gpu_memory_utilization"], vllm_standby=False, optim=c["optim"],
        learning_rate=cfg.learning_rate or DEFAULT_LR, extra={**cfg.extra, **server_settings(port)},
    )
    if "generation" in RunConfig.__dataclass_fields__:
        resolved = dataclasses.replace(resolved, generation="vllm")
    if resolved.output is None:
        resolved.output = str(Path("runs") / f"{slug(resolved.model)}-{slug(dataset)}-r{resolved.lora_rank}-s{resolved.seed}")
    # Absolute paths: the commands are run by hand or by a scheduler, from $HOME or a spool folder.
    resolved.output = str(Path(resolved.output).resolve())
    for name in ("data_path", "val_data"):  # always local files (hub data goes through --dataset)
        if getattr(resolved, name):
            setattr(resolved, name, str(Path(getattr(resolved, name)).resolve()))
    out = Path(resolved.output)
    ldir = (Path(launch_dir) if launch_dir else out.with_name(out.name + ".launch")).resolve()
    server_gpus = ",".join(str(i) for i in range(layout.server_gpus))
    trainer_gpus = ",".join(str(i) for i in range(layout.server_gpus, layout.num_gpus))
    trainer = ["accelerate", "launch", "--config_file", str(ldir / "accelerate.yaml"),
               "-m", "budgetreason.train.launch", str(ldir / "config.yaml")] + (["--wait"] if wait else [])
    return LaunchPlan(layout=layout, config=resolved, launch_dir=ldir, accelerate_config=accelerate_config(layout),
                      server_command=server_command(layout, resolved.model, port), trainer_command=trainer,
                      server_env={"CUDA_VISIBLE_DEVICES": server_gpus},
                      trainer_env={"CUDA_VISIBLE_DEVICES": trainer_gpus},
                      health_url=f"http://127.0.0.1:{port}/health", wait=wait, notes=notes)


# ---- running both ------------------------------------------------------------------------------------
def wait_healthy(url: str, server: subprocess.Popen, timeout_s: float, poll_s: float = 2.0) -> float:
    """Poll `url` until it answers 200; fail early if the server process exits. Returns seconds waited."""
    start = time.monotonic()
    while True:
        if server.poll() is not None:
            raise BudgetError(f"the vLLM server exited with code {server.returncode} before it was ready; see its log.")
        try:
            with urllib.request.urlopen(url, timeout=poll_s) as r:
                if r.status == 200:
                    return time.monotonic() - start
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() - start > timeout_s:
            raise BudgetError(f"the vLLM server did not answer {url} within {timeout_s:.0f} s; see its log.")
        time.sleep(poll_s)


def stop(proc: subprocess.Popen | None, grace_s: float = STOP_GRACE_S) -> None:
    """SIGTERM the process group (vLLM and accelerate start children), then SIGKILL after `grace_s`."""
    if proc is None or proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    except ProcessLookupError:
        pass


class Signalled(Exception):
    """SIGTERM or SIGHUP reached the supervisor (a scheduler's stop, a closed terminal)."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _raise_once(signum, frame):
    # Further SIGTERM/SIGHUP while stopping are ignored: a scheduler may repeat its signal, and the
    # trainers' save must not be cut short by the supervisor's own stop (SIGKILL follows the grace anyway).
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    raise Signalled(signum)


def supervise(server_cmd: list[str], trainer_cmd: list[str], *, server_env: dict, trainer_env: dict,
              health_url: str, log_dir: Path, start_timeout_s: float = SERVER_START_TIMEOUT_S,
              grace_s: float = STOP_GRACE_S, poll_s: float = 2.0) -> int:
    """Server first, trainers once it is healthy; both stopped when the trainers end, fail, or on a signal.

    Returns the trainers' exit code, or 128 + the signal's number after SIGTERM/SIGHUP. The server's
    output goes to log_dir/server.log; the trainers keep the terminal (their progress bar). Both run in
    their own sessions, so a signal to the supervisor never reaches them by itself: Ctrl-C is passed on
    to the trainers' process group as SIGINT, SIGTERM and SIGHUP as SIGTERM, so budgetreason's
    GracefulStop saves before they exit; then both groups are stopped (SIGTERM, SIGKILL after `grace_s`).
    """
    import threading

    log_dir.mkdir(parents=True, exist_ok=True)
    server = trainer = None
    old = {}
    if threading.current_thread() is threading.main_thread():  # signal handlers live in the main thread only
        old = {sig: signal.signal(sig, _raise_once) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        with open(log_dir / "server.log", "ab") as log:
            try:
                server = subprocess.Popen(server_cmd, env={**os.environ, **server_env}, stdout=log,
                                          stderr=subprocess.STDOUT, start_new_session=True)
                wait_healthy(health_url, server, start_timeout_s, poll_s)
                trainer = subprocess.Popen(trainer_cmd, env={**os.environ, **trainer_env}, start_new_session=True)
                try:
                    return trainer.wait()
                except (KeyboardInterrupt, Signalled) as e:
                    _forward(trainer, signal.SIGINT if isinstance(e, KeyboardInterrupt) else signal.SIGTERM, grace_s)
                    raise
            finally:
                if old:  # stopping now: a late SIGTERM/SIGHUP must not cut the stop of the other group short
                    for sig in old:
                        signal.signal(sig, signal.SIG_IGN)
                try:
                    stop(trainer, grace_s)
                finally:
                    stop(server, grace_s)
    except Signalled as e:
        return 128 + e.signum
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)


def _forward(proc: subprocess.Popen, sig: int, grace_s: float) -> None:
    """Pass `sig` to the process group and give it `grace_s` to save and exit."""
    try:
        os.killpg(proc.pid, sig)
        proc.wait(timeout=grace_s)
    except (subprocess.TimeoutExpired, ProcessLookupError):
        pass


def run(plan: LaunchPlan, console=None) -> int:
    """Write the files and run the server and trainers (on the GPU machine).

    A run folder another run holds is refused (or, with --wait, waited for) before the vLLM server
    takes its GPUs and loads the model, not minutes later when rank 0 asks for the lock.
    """
    from budgetreason.runs.folder import RunFolder

    RunFolder(plan.config.output, writer=True).wait_until_free(plan.wait, console)
    plan.write()
    return supervise(plan.server_command, plan.trainer_command, server_env=plan.server_env,
                     trainer_env=plan.trainer_env, health_url=plan.health_url, log_dir=plan.launch_dir)


# ---- inside each training process ----------------------------------------------------------------------
class SavedLayout:
    """The layout as written to layout.json, in the shape training.resolve reads a plan."""

    def __init__(self, data: dict):
        self.data = data
        self.fits, self.config = data["fits"], data["config"]
        self.warnings, self.suggestions = data["warnings"], data["suggestions"]
        self.est_steps = data["est_steps"]
        self.shape = SimpleNamespace(prompts_per_step=data["prompts_per_step"])  # the whole step's, over all trainers

    def to_dict(self) -> dict:
        return self.data


def worker(config_path: str, wait: bool = False) -> None:
    """One training process under accelerate: budgetreason.train on the launch folder's config, with the
    layout as its plan (the single-GPU planner would re-plan for a colocated vLLM)."""
    from budgetreason.train.training import train

    path = Path(config_path)
    layout = SavedLayout(json.loads((path.parent / "layout.json").read_text()))
    train(RunConfig.from_yaml(path), planned=layout, wait=wait)


if __name__ == "__main__":
    worker(sys.argv[1], wait="--wait" in sys.argv[2:])
