#!/usr/bin/env bash
# One prepared GPU session for a short window (a Colab runtime, a spot instance, a borrowed card; a
# lent device with 15 minutes in all, machine start included, leaves about 9 of them): bounded stages
# in order of value, every result written as it comes, so a window that ends early still leaves what
# finished. Run from the project root on the GPU machine:
#   bash benchmarks/gpu_session.sh [OUT_DIR]          (OUT_DIR defaults to $OUT, else gpu-session/)
# BR_WINDOW_S (default 540) is the time the script may take: a stage whose limit does not fit what is
# left of it is skipped (logged), and later, shorter stages still run. Stage limits (seconds) can be
# changed with LIMIT_<STAGE> (LIMIT_CALIBRATE_HF=120). BR_DRY_RUN=1 runs nothing: it logs each stage
# as if it took its whole limit, which shows what a window of BR_WINDOW_S holds at worst.
# Offline machines: build wheels here first with ../shared/tools/gpu-wheels.sh (→ .whl/) and carry .whl/
# along; stage "install" puts them in /tmp/site.
# What comes back, under OUT_DIR: session.log (stage starts/ends/skips with elapsed vs the window),
# env.txt, doctor.json, calibration.jsonl (one line per optimizer step, hf then unsloth --generation hf),
# bench.json, plan-*.json (corrected plans), and one <stage>.log each. Record the figures in
# docs/gpu-results.md.
set -uo pipefail
OUT=${1:-${OUT:-gpu-session}}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
MODEL=${BR_MODEL:-Qwen/Qwen2.5-1.5B-Instruct}
CACHE=${BR_CACHE:-/tmp/budgetreason-random-models}
WINDOW=${BR_WINDOW_S:-540}
DRY=${BR_DRY_RUN:-0}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
BR=(python3 -m cli.main)
SPENT=0  # dry run: the worst case, every stage taking its whole limit

elapsed() { if [ "$DRY" = 1 ]; then echo "$SPENT"; else echo "$SECONDS"; fi; }
log() { echo "$(date -u +%FT%TZ) $*" | tee -a "$OUT/session.log"; }
stage() {  # stage NAME LIMIT_S COMMAND...: bounded by timeout, output kept in NAME.log; skipped if it cannot fit
  local name=$1 limit=$2 var rc left start; shift 2
  var="LIMIT_${name^^}"; var=${var//-/_}; limit=${!var:-$limit}
  left=$((WINDOW - $(elapsed)))
  if [ "$limit" -gt "$left" ]; then
    log "skip $name: limit ${limit} s > ${left} s left (elapsed $(elapsed) of BR_WINDOW_S=${WINDOW} s)"
    return 0
  fi
  log "start $name (limit ${limit} s; elapsed $(elapsed) of ${WINDOW} s): $*"
  if [ "$DRY" = 1 ]; then
    SPENT=$((SPENT + limit))
    log "end $name: dry run, not started (elapsed at worst $(elapsed) of ${WINDOW} s)"
    return 0
  fi
  start=$SECONDS
  timeout --signal=TERM --kill-after=10 "$limit" "$@" >> "$OUT/$name.log" 2>&1
  rc=$?
  log "end $name: exit $rc after $((SECONDS - start)) s (elapsed $(elapsed) of ${WINDOW} s)$([ $rc -eq 124 ] && echo '; timed out, finished lines are kept')"
  tail -n 5 "$OUT/$name.log" | sed 's/^/    /' | tee -a "$OUT/session.log"
}

log "session: BR_WINDOW_S=${WINDOW} s$([ "$DRY" = 1 ] && echo ', dry run'); model $MODEL; results in $OUT"
if [ -d .whl ] && ls .whl/*.whl >/dev/null 2>&1; then
  stage install 90 python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl
  export PYTHONPATH="/tmp/site:$PYTHONPATH"
fi
stage env 20 bash -c "nvidia-smi; python3 -c 'import sys, torch; print(sys.version); print(\"torch\", torch.__version__, \"cuda\", torch.version.cuda)'; ${BR[*]} versions"
cp "$OUT/env.log" "$OUT/env.txt" 2>/dev/null || true
# In order of value: what the device is and has, then the measured step (the planner's correction),
# then the bench ratio issue 13 asks for, then a plan corrected by it, then the second engine.
# 1. doctor: exit 1 is a finding, not a reason to stop (vLLM is usually missing on such machines)
stage doctor 60 bash -c "${BR[*]} doctor --json --output '$OUT' > '$OUT/doctor.json'"
# 2. calibrate --quick: three shapes (two ranks, two lengths), two steps, one line per step as it comes
stage calibrate-hf 150 "${BR[@]}" calibrate --quick --models "$MODEL" --backend hf \
  --output "$OUT/calibration.jsonl" --cache "$CACHE"
# 3. bench at one shape, the same engine (transformers' generate) on both sides; bench.json after each side
stage bench 150 "${BR[@]}" bench --model "$MODEL" --k 8 --completion 256 --rank 64 --steps 2 --prompts 4 \
  --backend unsloth --generation hf --cache "$CACHE" --output "$OUT/bench.json"
# 4. the planner corrected by those lines
stage plan-hf 30 bash -c "${BR[*]} plan --gpu auto --backend hf --calibration '$OUT/calibration.jsonl' --json > '$OUT/plan-hf.json'"
# 5. the second engine, if the window still has room
stage calibrate-unsloth-hf 150 "${BR[@]}" calibrate --quick --models "$MODEL" --backend unsloth --generation hf \
  --output "$OUT/calibration.jsonl" --cache "$CACHE"
stage plan-unsloth-hf 30 bash -c "${BR[*]} plan --gpu auto --backend unsloth --generation hf --calibration '$OUT/calibration.jsonl' --json > '$OUT/plan-unsloth-hf.json'"
log "done after $(elapsed) of ${WINDOW} s; results in $OUT"
