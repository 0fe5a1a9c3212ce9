#!/usr/bin/env bash
# vast.ai on-start script for budgetreason: install, then train in the background under setsid so the
# run survives the SSH session; on a restarted (interrupted) instance the same command resumes from the
# last checkpoint in the persistent folder. Paste it into the instance's "On-start script" field, or run
# it by hand. Settings come from environment variables (set them in the template or before calling):
#   BR_MODEL (Qwen/Qwen2.5-1.5B-Instruct)  BR_DATASET (open-rs)  BR_HOURS (24)  BR_GPU (auto)
#   BR_CONFIG (a shipped recipe or YAML, optional)  BR_MAX_STEPS (optional)  BR_ARGS (more flags)
#   BR_WORKDIR (/workspace/budgetreason: keep it on the instance's persistent disk)
#   BR_REPO (where to pip install from)  BR_SKIP_INSTALL=1 (already installed)
#   BR_SKIP_DOCTOR=1 (train even when `budgetreason doctor` finds a problem; it is skipped with BR_GPU=cpu)
set -euo pipefail
WORKDIR=${BR_WORKDIR:-/workspace/budgetreason}
MODEL=${BR_MODEL:-Qwen/Qwen2.5-1.5B-Instruct}
DATASET=${BR_DATASET:-open-rs}
HOURS=${BR_HOURS:-24}
GPU=${BR_GPU:-auto}
REPO=${BR_REPO:-git+https://github.com/budgetreason/budgetreason}
mkdir -p "$WORKDIR"
cd "$WORKDIR"
if [ "${BR_SKIP_INSTALL:-0}" != "1" ] && ! python -c "import budgetreason" 2>/dev/null; then
  python -m pip install -q "budgetreason[gpu] @ $REPO" 2>&1 | tail -n 3
fi
if [ -f train.pid ] && kill -0 "$(cat train.pid)" 2>/dev/null; then
  echo "budgetreason: training already running (pid $(cat train.pid)); log: $WORKDIR/train.log"
  exit 0
fi
# Check the machine before the hour is paid for: CUDA, driver, bf16, free GPU memory and disk, version matrix.
if [ "$GPU" != "cpu" ] && [ "${BR_SKIP_DOCTOR:-0}" != "1" ]; then
  if ! budgetreason doctor --output "$WORKDIR" 2>&1 | tee -a doctor.log; then
    echo "budgetreason: doctor found a problem (above, and in $WORKDIR/doctor.log); fix it, or set BR_SKIP_DOCTOR=1"
    exit 1
  fi
fi
NAME=$(echo "$MODEL" | sed 's#.*/##' | tr '[:upper:]' '[:lower:]')
OUTPUT=${BR_OUTPUT:-$WORKDIR/runs/$NAME-$DATASET}
ARGS=(train --model "$MODEL" --dataset "$DATASET" --gpu "$GPU" --output "$OUTPUT" --no-progress)
if [ -n "${BR_MAX_STEPS:-}" ]; then ARGS+=(--max-steps "$BR_MAX_STEPS"); else ARGS+=(--hours "$HOURS"); fi
if [ -n "${BR_CONFIG:-}" ]; then ARGS+=(--config "$BR_CONFIG"); fi
# shellcheck disable=SC2206
if [ -n "${BR_ARGS:-}" ]; then ARGS+=($BR_ARGS); fi
echo "$(date -u +%FT%TZ) budgetreason ${ARGS[*]}" >> train.log
setsid nohup budgetreason "${ARGS[@]}" >> train.log 2>&1 < /dev/null &
echo $! > train.pid
echo "budgetreason: training in the background (pid $!); follow it with: tail -f $WORKDIR/train.log"
