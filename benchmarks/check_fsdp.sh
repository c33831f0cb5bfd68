#!/usr/bin/env bash
# The GRPO trainer under the bundled accelerate configs on ONE GPU (accelerate has no FSDP on CPU).
#   bash benchmarks/check_fsdp.sh [OUT_DIR]        (~2-3 min on an H100, mostly start-up)
# 1. ddp.yaml: one step of cpu-smoke on cuda must run (exit 0).
# 2. fsdp.yaml: the trainer must refuse it at start (exit 2, "does not run under accelerate's FSDP").
# 3. FSDP2 building blocks for the lockstep follow-up: a LoRA tiny model prepared under FSDP2,
#    forward/backward/step, accelerator.get_state_dict, adapter saved and reloaded equal.
set -uo pipefail
OUT=${1:-${OUT:-/tmp/check_fsdp}}
mkdir -p "$OUT"
PY=${PYTHON:-python}
DDP=$($PY -m agemem_gym train --print-accelerate-config ddp)
FSDP=$($PY -m agemem_gym train --print-accelerate-config fsdp)
RUN=(-m agemem_gym.adapters.grpo --config cpu-smoke --steps 1 --no-progress --overwrite)
status=0

timeout 300 accelerate launch --config_file "$DDP" --num_processes 1 "${RUN[@]}" --output-dir "$OUT/ddp" \
    >"$OUT/ddp.log" 2>&1
rc=$?; echo "ddp: exit $rc (expected 0)"; [ $rc -eq 0 ] || { status=1; tail -20 "$OUT/ddp.log"; }

timeout 300 accelerate launch --config_file "$FSDP" --num_processes 1 "${RUN[@]}" --output-dir "$OUT/fsdp" \
    >"$OUT/fsdp.log" 2>&1
rc=$?; echo "fsdp: exit $rc (expected 2, refused)"; grep -m1 "does not run under accelerate's FSDP" "$OUT/fsdp.log" \
    || { status=1; tail -20 "$OUT/fsdp.log"; }

cat >"$OUT/fsdp_probe.py" <<'PY'
import sys, time, torch
from accelerate import Accelerator
from peft import LoraConfig, PeftModel, get_peft_model
from agemem_gym.policies.llm.models import load_model
t0 = time.time()
acc = Accelerator()
print("distributed_type", acc.distributed_type, "device", acc.device, flush=True)
base, tok = load_model("tiny-vocab", seed=0)
model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", task_type="CAUSAL_LM"))
opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
model, opt = acc.prepare(model, opt)
ids = torch.tensor([[1, 2, 3, 4, 5, 6]], device=acc.device)
loss = model(input_ids=ids, labels=ids).loss
acc.backward(loss); opt.step(); opt.zero_grad()
state = acc.get_state_dict(model)  # every rank calls it: it gathers the shards
lora = {k: v for k, v in state.items() if "lora_" in k}
if acc.is_main_process:
    acc.unwrap_model(model).save_pretrained(sys.argv[1], state_dict=state)
    again = PeftModel.from_pretrained(load_model("tiny-vocab", seed=0)[0], sys.argv[1])
    saved = {k: v for k, v in again.state_dict().items() if "lora_" in k}
    same = len(saved) == len(lora) and all(torch.equal(saved[k].cpu(), lora[k].cpu()) for k in lora)
    print(f"fsdp2 lora: loss {loss.item():.4f}, {len(lora)} adapter tensors gathered, reloaded equal: {same}, "
          f"{time.time() - t0:.1f} s", flush=True)
    sys.exit(0 if same and lora else 1)
PY
timeout 300 accelerate launch --config_file "$FSDP" --num_processes 1 "$OUT/fsdp_probe.py" "$OUT/adapter" \
    >"$OUT/probe.log" 2>&1
rc=$?; grep -E "distributed_type|fsdp2 lora" "$OUT/probe.log"; echo "fsdp2 probe: exit $rc (expected 0)"
[ $rc -eq 0 ] || { status=1; tail -30 "$OUT/probe.log"; }
exit $status
