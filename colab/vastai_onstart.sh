#!/usr/bin/env bash
# vast.ai on-start script for budgetreason: install, then train in the background under setsid so the
# run survives the SSH session; on a restarted (interrupted) instance the same command resumes from the
# last complete checkpoint in the persistent folder. Paste it into the instance's "On-start script" field,
# or run it by hand. Settings come from environment variables (set them in the template or before calling):
#   BR_CONFIG (a shipped recipe or YAML): the recipe decides model, dataset, GPU and hours; the variables
#             below override it only when set.
#   Without BR_CONFIG: BR_MODEL (Qwen/Qwen2.5-1.5B-Instruct)  BR_DATASET (open-rs)  BR_HOURS (24)
#   BR_GPU (auto)  BR_MAX_STEPS (optional)  BR_SAVE_MINUTES (optional)  BR_ARGS (more flags)
#   BR_OUTPUT (run folder; default $BR_WORKDIR/runs/<recipe or model-dataset>)
#   BR_WORKDIR (/workspace/budgetreason: keep it on the instance's persistent disk)
#   BR_REPO (where to pip install from)  BR_SKIP_INSTALL=1 (already installed)
#   BR_SKIP_DOCTOR=1 (train even when `budgetreason doctor` finds a problem; it is skipped with BR_GPU=cpu)
# Whether training runs is decided by the run folder's lock (held by the live trainer, released by the
# kernel when it dies), not by a PID file: after a restart an unrelated process may have the old PID.
set -euo pipefail
WORKDIR=${BR_WORKDIR:-/workspace/budgetreason}
REPO=${BR_REPO:-git+https://github.com/budgetreason/budgetreason}
PYTHON=${BR_PYTHON:-python}
mkdir -p "$WORKDIR"
cd "$WORKDIR"
if [ "${BR_SKIP_INSTALL:-0}" != "1" ] && ! "$PYTHON" -c "import budgetreason" 2>/dev/null; then
  "$PYTHON" -m pip install -q "budgetreason[gpu] @ $REPO" 2>&1 | tail -n 3
fi
if [ -n "${BR_CONFIG:-}" ]; then
  NAME=$(basename "$BR_CONFIG"); NAME=${NAME%.yaml}; NAME=${NAME%.yml}
  ARGS=(train --config "$BR_CONFIG")
  if [ -n "${BR_MODEL:-}" ]; then ARGS+=(--model "$BR_MODEL"); fi
  if [ -n "${BR_DATASET:-}" ]; then ARGS+=(--dataset "$BR_DATASET"); fi
  if [ -n "${BR_HOURS:-}" ]; then ARGS+=(--hours "$BR_HOURS"); fi
else
  MODEL=${BR_MODEL:-Qwen/Qwen2.5-1.5B-Instruct}
  DATASET=${BR_DATASET:-open-rs}
  NAME=$(echo "$MODEL" | sed 's#.*/##' | tr '[:upper:]' '[:lower:]')-$DATASET
  ARGS=(train --model "$MODEL" --dataset "$DATASET")
  if [ -z "${BR_MAX_STEPS:-}" ] || [ -n "${BR_HOURS:-}" ]; then ARGS+=(--hours "${BR_HOURS:-24}"); fi
fi
if [ -n "${BR_MAX_STEPS:-}" ]; then ARGS+=(--max-steps "$BR_MAX_STEPS"); fi
if [ -n "${BR_GPU:-}" ]; then ARGS+=(--gpu "$BR_GPU"); fi
if [ -n "${BR_SAVE_MINUTES:-}" ]; then ARGS+=(--save-minutes "$BR_SAVE_MINUTES"); fi
OUTPUT=${BR_OUTPUT:-$WORKDIR/runs/$NAME}
ARGS+=(--output "$OUTPUT" --no-progress)
# shellcheck disable=SC2206
if [ -n "${BR_ARGS:-}" ]; then ARGS+=($BR_ARGS); fi
if HOLDER=$("$PYTHON" -m budgetreason.runs.folder "$OUTPUT" 2>/dev/null); then
  echo "budgetreason: training already running in $OUTPUT ($HOLDER); log: $WORKDIR/train.log"
  exit 0
fi
# A trainer started a moment ago may not hold the lock yet (it takes it once its imports are done):
# trust train.pid only when that process is really `budgetreason train`.
if [ -f train.pid ] && PID=$(cat train.pid) && [ -r "/proc/$PID/cmdline" ] \
    && tr '\0' ' ' < "/proc/$PID/cmdline" | grep -q "budgetreason train"; then
  echo "budgetreason: training already running (pid $PID, starting up); log: $WORKDIR/train.log"
  exit 0
fi
# Check the machine before the hour is paid for: CUDA, driver, bf16, free GPU memory and disk, version matrix.
if [ "${BR_GPU:-auto}" != "cpu" ] && [ "${BR_SKIP_DOCTOR:-0}" != "1" ]; then
  if ! budgetreason doctor --output "$WORKDIR" 2>&1 | tee -a doctor.log; then
    echo "budgetreason: doctor found a problem (above, and in $WORKDIR/doctor.log); fix it, or set BR_SKIP_DOCTOR=1"
    exit 1
  fi
fi
echo "$(date -u +%FT%TZ) budgetreason ${ARGS[*]}" >> train.log
setsid nohup budgetreason "${ARGS[@]}" >> train.log 2>&1 < /dev/null &
echo $! > train.pid
echo "budgetreason: training in the background (pid $!); follow it with: tail -f $WORKDIR/train.log"
