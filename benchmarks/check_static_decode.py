"""Static decoding (CUDA graphs) against the growing-cache decoder on a GPU: same turns, speed.

For SmolLM2-135M-Instruct in fp32 and bf16, bare and with a LoRA adapter (random, non-zero,
as after training steps), decodes the first turns of 8 HotpotQA-v0 episodes, grammar
constrained, with ``HFPolicy(static_decode=False)`` and ``static_decode=True``, the same seed.
Reports milliseconds per decode step, generated tokens per second, the share of identical
turns and the largest log-prob gap. A warm-up call per mode comes first (graph capture and
cuBLAS start-up are one-off costs).

    python benchmarks/check_static_decode.py --json results/check_static_decode.json   (one GPU)
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import gymnasium as gym
import torch
from _common import format_table, run_metadata, write_json

import agemem_gym  # noqa: F401 - registers the ids
from agemem_gym.policies.llm.hf_policy import HFPolicy
from agemem_gym.policies.llm.models import load_model


def _prompts(tok: Any, rows: int) -> tuple[list[Any], list[Any]]:
    env = gym.make("AgeMem/HotpotQA-v0", tokenizer=tok)
    pairs = [env.reset(seed=i, options={"task_id": i}) for i in range(rows)]
    return [p[0] for p in pairs], [p[1] for p in pairs]


def _with_lora(model: Any) -> Any:
    from peft import LoraConfig, get_peft_model

    peft = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, target_modules="all-linear", task_type="CAUSAL_LM"))
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in peft.named_parameters():
            if "lora_B" in name:  # zero at init: give it the size a few updates would
                p.copy_(1e-3 * torch.randn(p.shape, generator=g))
    return peft.eval()


def _run(
    model: Any, tok: Any, static: bool, args: argparse.Namespace, obs: list[Any], infos: list[Any]
) -> dict[str, Any]:
    policy = HFPolicy(
        model, tok, max_new_tokens=args.max_new_tokens, temperature=1.0, batch_size=len(obs), constrained=True,
        static_decode=static,
    )  # fmt: skip
    policy.generate(obs[:2], infos[:2])  # warm-up (and graph capture for this shape)
    policy.reseed(args.seed)
    records, steps = [], 0
    _sync()
    t0 = time.perf_counter()
    for _ in range(args.calls):
        out = policy.generate(obs, infos)
        records += out
        steps += max(len(r.response_ids) for r in out)
    _sync()
    seconds = time.perf_counter() - t0
    generated = sum(len(r.response_ids) for r in records)
    return {"records": records, "seconds": seconds, "steps": steps, "generated": generated}


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _compare(a: list[Any], b: list[Any]) -> tuple[float, float]:
    same = [x.response_ids == y.response_ids for x, y in zip(a, b)]
    gaps = [abs(p - q) for x, y, s in zip(a, b, same) if s for p, q in zip(x.logprobs, y.logprobs)]
    return sum(same) / len(same), max(gaps, default=float("nan"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--rows", type=int, default=8)
    parser.add_argument("--calls", type=int, default=3)
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cuda", help="cpu: a dry run of the script (static steps run eagerly)")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("check_static_decode.py needs a GPU (CUDA graphs); --device cpu for a dry run")
    rows, results = [], []
    for dtype in (torch.float32, torch.bfloat16):
        for lora in (False, True):
            model, tok = load_model(args.model)
            model = model.to(args.device, dtype).eval()
            model = _with_lora(model) if lora else model
            obs, infos = _prompts(tok, args.rows)
            runs = {s: _run(model, tok, s, args, obs, infos) for s in (False, True)}
            same, gap = _compare(runs[False]["records"], runs[True]["records"])
            for static, r in runs.items():
                ms = 1000 * r["seconds"] / r["steps"]
                row = [str(dtype).split(".")[1], "yes" if lora else "no", "static" if static else "growing"]
                speed = r["generated"] / r["seconds"]
                rows.append([*row, ms, speed, f"{same:.0%}" if static else "", gap if static else ""])
                results.append(
                    {"dtype": row[0], "lora": lora, "static": static, "ms_per_step": ms, "tokens_per_s": speed}
                    | {"same_turns": same, "max_gap": gap}
                )
            del model
    device = torch.cuda.get_device_name() if args.device == "cuda" else args.device
    print(f"{args.model}, {args.rows} rows, {args.calls} calls, max_new_tokens={args.max_new_tokens}, {device}")
    print(format_table(["dtype", "LoRA", "decoder", "ms/step", "generated tok/s", "same turns", "max Δlogp"], rows))
    write_json(args.json, {"meta": run_metadata(), "args": vars(args), "results": results})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
