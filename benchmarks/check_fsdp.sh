#!/usr/bin/env bash
# The GRPO trainer under the bundled accelerate configs on ONE GPU (NCCL, bf16 autocast).
#   bash benchmarks/check_fsdp.sh [OUT_DIR]        (~3-4 min on an H100, mostly start-up)
# On CPU the same FSDP2 path is tested by tests/adapters/test_grpo_fsdp.py (2 gloo processes,
# compared with replicas); this script checks what only a GPU shows, on one process:
# 1. ddp.yaml: two steps of cpu-smoke (LoRA variant) on cuda, replicated (exit 0).
# 2. fsdp.yaml: step 0 sharded with FSDP2 (sharding = "auto" follows the launch), then --resume
#    for step 1 (exit 0 both): NCCL collectives, gathered-weight rollouts, gathered checkpoints.
# 3. the two runs' final adapters agree (bf16 autocast: within 1e-3).
# Several GPUs (where ranks really pad) have not been tried: run step 2 with --num_processes N.
set -uo pipefail
OUT=${1:-${OUT:-/tmp/check_fsdp}}
mkdir -p "$OUT"
PY=${PYTHON:-python}
DDP=$($PY -m agemem_gym train --print-accelerate-config ddp)
FSDP=$($PY -m agemem_gym train --print-accelerate-config fsdp)
cat >"$OUT/run.toml" <<'TOML'
preset = "cpu-smoke"
lora_rank = 4
lora_alpha = 8
save_every = 1
TOML
RUN=(-m agemem_gym.adapters.grpo --config "$OUT/run.toml" --no-progress)
status=0
launch() {  # name, config file, expected exit, accelerate-launch args + trainer args
    local name=$1 cfg=$2 want=$3; shift 3
    timeout 300 accelerate launch --config_file "$cfg" --num_processes 1 "${RUN[@]}" "$@" >"$OUT/$name.log" 2>&1
    local rc=$?; echo "$name: exit $rc (expected $want)"
    [ $rc -eq "$want" ] || { status=1; tail -30 "$OUT/$name.log"; }
}
launch ddp "$DDP" 0 --steps 2 --output-dir "$OUT/ddp" --overwrite
launch fsdp-step0 "$FSDP" 0 --steps 1 --output-dir "$OUT/fsdp" --overwrite
launch fsdp-resume "$FSDP" 0 --steps 2 --output-dir "$OUT/fsdp" --resume
grep -q "resuming from $OUT/fsdp at step 1" "$OUT/fsdp-resume.log" || { status=1; echo "fsdp: did not resume"; }
grep -m1 "parameters sharded with FSDP2" "$OUT/fsdp-step0.log" || { status=1; echo "fsdp: not sharded"; }

$PY - "$OUT" <<'PY' || status=1
import csv, sys, torch
from pathlib import Path
from safetensors.torch import load_file
out = Path(sys.argv[1])
a = load_file(str(out / "ddp/checkpoint-000001/model/adapter_model.safetensors"))
b = load_file(str(out / "fsdp/checkpoint-000001/model/adapter_model.safetensors"))
diff = max((a[k].float() - b[k].float()).abs().max().item() for k in a)
rows = list(csv.DictReader((out / "fsdp/metrics.csv").open()))
print(f"adapters: {len(a)} tensors, same names {sorted(a) == sorted(b)}, max |ddp - fsdp| {diff:.2e}; "
      f"fsdp rewards {[r['reward/mean'] for r in rows]}")
sys.exit(0 if sorted(a) == sorted(b) and diff < 1e-3 and len(rows) == 2 else 1)
PY
exit $status
