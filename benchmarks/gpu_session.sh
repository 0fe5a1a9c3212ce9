#!/usr/bin/env bash
# One prepared GPU session for a short window (about 12 minutes: a Colab runtime, a spot instance, a
# borrowed card): bounded stages, every result written as it comes, so a window that ends early still
# leaves what finished. Run from the project root on the GPU machine:
#   bash benchmarks/gpu_session.sh [OUT_DIR]          (OUT_DIR defaults to $OUT, else gpu-session/)
# Offline machines: build wheels here first with ../shared/tools/gpu-wheels.sh (→ .whl/) and carry .whl/
# along; stage "install" puts them in /tmp/site. Stage limits (seconds) can be changed with LIMIT_<STAGE>.
# What comes back, under OUT_DIR: session.log (stage starts/ends), env.txt, doctor.json, calibration.jsonl
# (one line per optimizer step, hf and unsloth --generation hf), plan-*.json (corrected plans), bench.json,
# and one <stage>.log each. Record the figures in docs/gpu-results.md.
set -uo pipefail
OUT=${1:-${OUT:-gpu-session}}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
MODEL=${BR_MODEL:-Qwen/Qwen2.5-1.5B-Instruct}
CACHE=${BR_CACHE:-/tmp/budgetreason-random-models}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
BR=(python3 -m cli.main)

log() { echo "$(date -u +%FT%TZ) $*" | tee -a "$OUT/session.log"; }
stage() {  # stage NAME DEFAULT_LIMIT_S COMMAND...: bounded by timeout, output kept in NAME.log
  local name=$1 limit=$2 var rc; shift 2
  var="LIMIT_${name^^}"; var=${var//-/_}; limit=${!var:-$limit}
  log "start $name (limit ${limit} s): $*"
  timeout --signal=TERM --kill-after=15 "$limit" "$@" >> "$OUT/$name.log" 2>&1
  rc=$?
  log "end $name: exit $rc$([ $rc -eq 124 ] && echo ' (timed out; finished lines are kept)')"
  tail -n 5 "$OUT/$name.log" | sed 's/^/    /' | tee -a "$OUT/session.log"
}

if [ -d .whl ] && ls .whl/*.whl >/dev/null 2>&1; then
  stage install 150 python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl
  export PYTHONPATH="/tmp/site:$PYTHONPATH"
fi
stage env 30 bash -c "nvidia-smi; python3 -c 'import sys, torch; print(sys.version); print(\"torch\", torch.__version__, \"cuda\", torch.version.cuda)'; ${BR[*]} versions"
cp "$OUT/env.log" "$OUT/env.txt" 2>/dev/null || true
# 1. doctor: exit 1 is a finding, not a reason to stop (vLLM is usually missing on such machines)
stage doctor 150 bash -c "${BR[*]} doctor --json --output '$OUT' > '$OUT/doctor.json'"
# 2. calibrate --quick: three shapes each (two ranks, two lengths), two steps, one line per step
stage calibrate-hf 240 "${BR[@]}" calibrate --quick --models "$MODEL" --backend hf \
  --output "$OUT/calibration.jsonl" --cache "$CACHE"
stage calibrate-unsloth-hf 240 "${BR[@]}" calibrate --quick --models "$MODEL" --backend unsloth --generation hf \
  --output "$OUT/calibration.jsonl" --cache "$CACHE"
# 3. the planner corrected by those lines, per engine
stage plan-hf 60 bash -c "${BR[*]} plan --gpu auto --backend hf --calibration '$OUT/calibration.jsonl' --json > '$OUT/plan-hf.json'"
stage plan-unsloth-hf 60 bash -c "${BR[*]} plan --gpu auto --backend unsloth --generation hf --calibration '$OUT/calibration.jsonl' --json > '$OUT/plan-unsloth-hf.json'"
# 4. bench at one shape, the same engine (transformers' generate) on both sides
stage bench 240 "${BR[@]}" bench --model "$MODEL" --k 8 --completion 256 --rank 64 --steps 2 --prompts 4 \
  --backend unsloth --generation hf --cache "$CACHE" --output "$OUT/bench.json"
log "done; results in $OUT"
