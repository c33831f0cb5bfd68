"""The GRPO update step: ours (packed rows, token-mean, k3 KL) against TRL's GRPOTrainer loss.

``--memory`` instead measures the peak memory (max RSS) and time of scoring (π_old and π_ref)
plus one update, each variant in a fresh process: the whole vocabulary block at once with
every layer's activations kept (the former layout), vocabulary chunks, vocabulary chunks
with checkpointed decoder layers, and those with glibc's mmap threshold fixed (the default).

Both get the same model, the same samples (prompt + completion token ids whose lengths
follow the spread of real multi-turn memory episodes: long, varied prompts, short
completions), the same precomputed old / reference log-probs, β = 0.1, clip 0.2, and run
forward + backward + one AdamW step over the whole batch. Generation is not timed (both
trainers use ``model.generate`` or vLLM for it).

    python benchmarks/bench_trainer.py --model tiny --samples 64 --json results/bench_trainer.json
    python benchmarks/bench_trainer.py --model smollm2 --device cuda --dtype bfloat16   # on a GPU
    python benchmarks/bench_trainer.py --memory --model smollm2 --samples 2 --prompt 2500 3500 --completion 150 257

``--phases`` times one trainer step after the rollouts on multi-turn episodes (every turn's prompt
is the shared system prompt, the task and the history so far), phase by phase: π_old scoring,
π_ref scoring and the update, the former path (``packing="block-mask"``, π_old always scored)
against the current one (prefix-tree rows; no π_old pass with one epoch of one minibatch), both
from the same weights, interleaved, and checks that their losses agree:

    python benchmarks/bench_trainer.py --phases --model smollm2 --lora-rank 16 --episodes 8 --turns 4 \
        --system 1010 --row-tokens 4096 --rows-per-micro-batch 2 --epochs 2
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from typing import Any

import numpy as np
import torch
from _common import format_table, run_metadata, write_json

from agemem_gym.adapters.grpo.batching import Sample, pack_samples, padding_fraction
from agemem_gym.adapters.grpo.config import GRPOConfig
from agemem_gym.adapters.grpo.update import (
    make_autocast,
    old_is_current,
    reference_logprobs,
    score_logprobs,
    update_policy,
)
from agemem_gym.policies.llm.models import load_model


def make_samples(n: int, vocab: int, prompt: tuple[int, int], completion: tuple[int, int], seed: int) -> list[Sample]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        p = int(rng.integers(*prompt))
        c = int(rng.integers(*completion))
        s = Sample(rng.integers(10, vocab, p).tolist(), rng.integers(10, vocab, c).tolist(), traj=i)
        s.advantage = float(rng.normal())
        out.append(s)
    return out


def time_ours(model, samples, config, pad_id, repeats: int) -> tuple[float, float]:
    autocast = _autocast(model)
    old = score_logprobs(model, samples, config, pad_id, autocast)  # the update's precision: ratio 1 at start
    for s, o in zip(samples, old):
        s.old_logprobs, s.ref_logprobs = o, o + 0.01
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-6)
    rng = np.random.default_rng(0)
    update_policy(model, opt, samples, config, pad_id, rng, autocast)  # warm-up
    sync()
    t0 = time.perf_counter()
    for _ in range(repeats):
        update_policy(model, opt, samples, config, pad_id, rng, autocast)
    sync()
    rows = pack_samples(samples, max(config.row_tokens, max(len(s) for s in samples)))
    return (time.perf_counter() - t0) / repeats, padding_fraction(rows, config.rows_per_micro_batch)


def _autocast(model):
    return make_autocast("auto", next(model.parameters()).device)


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def trl_inputs(chunk: list[Sample], pad_id: int, device) -> tuple[dict, float]:
    """TRL's input layout: left-padded prompts, right-padded completions."""
    P = max(len(s.prompt_ids) for s in chunk)
    C = max(len(s.response_ids) for s in chunk)
    B = len(chunk)
    prompt = torch.full((B, P), pad_id)
    pmask = torch.zeros((B, P), dtype=torch.long)
    comp = torch.full((B, C), pad_id)
    cmask = torch.zeros((B, C), dtype=torch.long)
    old = torch.zeros((B, C))
    for i, s in enumerate(chunk):
        prompt[i, P - len(s.prompt_ids) :] = torch.tensor(s.prompt_ids)
        pmask[i, P - len(s.prompt_ids) :] = 1
        comp[i, : len(s.response_ids)] = torch.tensor(s.response_ids)
        cmask[i, : len(s.response_ids)] = 1
        old[i, : len(s.response_ids)] = s.old_logprobs
    inputs = {
        "prompt_ids": prompt.to(device),
        "prompt_mask": pmask.to(device),
        "completion_ids": comp.to(device),
        "completion_mask": cmask.to(device),
        "advantages": torch.tensor([s.advantage for s in chunk]).to(device),
        "old_per_token_logps": old.to(device),
        "ref_per_token_logps": (old + 0.01).to(device),
        "num_items_in_batch": cmask.sum().to(device),
    }
    used = sum(len(s) for s in chunk)
    return inputs, 1.0 - used / (B * (P + C))


def time_trl(model, tok, samples, batch_size: int, repeats: int) -> tuple[float, float] | None:
    try:
        from datasets import Dataset
        from trl import GRPOConfig as TRLConfig
        from trl import GRPOTrainer
    except ImportError:
        print("trl (and datasets) not installed: skipping TRL (pip install trl)")
        return None
    with tempfile.TemporaryDirectory() as tmp:
        # beta=0 at construction: TRL would otherwise rebuild a reference model from a hub id; the
        # reference log-probs are passed in precomputed, so beta is raised to 0.1 right after
        args = TRLConfig(
            output_dir=tmp,
            per_device_train_batch_size=batch_size,
            num_generations=2,
            beta=0.0,
            epsilon=0.2,
            loss_type="bnpo",
            report_to=[],
            use_cpu=not torch.cuda.is_available(),
            save_strategy="no",
            max_completion_length=8,
            learning_rate=1e-6,
            bf16=next(model.parameters()).dtype == torch.bfloat16,
        )
        ds = Dataset.from_list([{"prompt": "x"}] * 4)
        trainer = GRPOTrainer(
            model=model,
            processing_class=tok,
            reward_funcs=lambda completions, **k: [0.0] * len(completions),
            args=args,
            train_dataset=ds,
        )
        trainer.beta = 0.1
        trainer.current_gradient_accumulation_steps = max(1, len(samples) // batch_size)
        opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-6)
        device = next(model.parameters()).device
        chunks = [samples[i : i + batch_size] for i in range(0, len(samples), batch_size)]
        prepared = [trl_inputs(c, tok.pad_token_id, device) for c in chunks]
        padding = float(np.mean([p for _, p in prepared]))

        def step() -> None:
            model.train()
            opt.zero_grad(set_to_none=True)
            for inputs, _ in prepared:
                trainer._compute_loss(model, inputs).backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()

        step()  # warm-up
        sync()
        t0 = time.perf_counter()
        for _ in range(repeats):
            step()
        sync()
        return (time.perf_counter() - t0) / repeats, padding


MEMORY_VARIANTS = (
    ("whole vocabulary block, layers kept", {"logprob_chunk_tokens": 1 << 30, "gradient_checkpointing": False}),
    ("256-position chunks, layers kept", {"logprob_chunk_tokens": 256, "gradient_checkpointing": False}),
    ("chunks + checkpointed layers", {"logprob_chunk_tokens": 256, "gradient_checkpointing": True}),
)
"""Each with glibc's default allocator settings; the last row adds ``malloc_mmap_threshold`` (the default)."""


def _bench_config(args: argparse.Namespace, **changes: Any) -> GRPOConfig:
    """The model, LoRA rank and rows the command line names, a KL term on, plus ``changes``."""
    return GRPOConfig(
        model=args.model,
        lora_rank=args.lora_rank,
        kl_beta=0.05,
        row_tokens=args.row_tokens,
        rows_per_micro_batch=args.rows_per_micro_batch,
        **changes,
    )


def memory_child(args: argparse.Namespace, changes: dict) -> dict:
    """Score and update once with ``changes``; this process's peak RSS and the seconds taken."""
    from agemem_gym.adapters.grpo.state import build_models, return_freed_memory

    config = _bench_config(args, **changes)
    return_freed_memory(config.malloc_mmap_threshold)  # as build_state does
    torch.manual_seed(0)
    model, reference, tok = build_models(config, None, torch.device(args.device))
    samples = make_samples(args.samples, len(tok), tuple(args.prompt), tuple(args.completion), seed=0)
    loaded = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    autocast = make_autocast("auto", torch.device(args.device))
    t0 = time.perf_counter()
    old = score_logprobs(model, samples, config, tok.pad_token_id, autocast)
    refs = reference_logprobs(model, reference, samples, config, tok.pad_token_id, autocast)
    for s, o, r in zip(samples, old, refs):
        s.old_logprobs, s.ref_logprobs = o, r
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-6)
    update_policy(model, opt, samples, config, tok.pad_token_id, np.random.default_rng(0), autocast)
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"peak_mb": peak, "loaded_mb": loaded, "seconds": seconds, "tokens": sum(len(s) for s in samples)}


def memory_main(args: argparse.Namespace, argv: list[str]) -> int:
    """Each variant in a fresh process (max RSS only grows); a table with ratios to the first."""
    rows, payload = [], {"meta": run_metadata(), "args": vars(args), "variants": {}}
    variants = [(name, {**changes, "malloc_mmap_threshold": 0}) for name, changes in MEMORY_VARIANTS]
    variants.append(("chunks + checkpointed layers + 128 KiB mmap threshold (default)", {}))
    for name, changes in variants:
        cmd = [sys.executable, __file__, *argv, "--memory-child", json.dumps(changes)]
        out = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.splitlines()[-1])
        payload["variants"][name] = out
        first = payload["variants"][variants[0][0]]
        rows.append(
            [name, out["peak_mb"], first["peak_mb"] / out["peak_mb"], out["seconds"], out["seconds"] / first["seconds"]]
        )
    print(
        f"{args.samples} samples, {payload['variants'][name]['tokens']} tokens, model {args.model} on {args.device}, "
        f"LoRA r{args.lora_rank}, row_tokens {args.row_tokens}; scoring (π_old, π_ref) + one update"
    )
    print(format_table(["variant", "peak RSS MB", "less memory", "seconds", "time ratio"], rows))
    write_json(args.json, payload)
    return 0


def episode_samples(vocab: int, args: argparse.Namespace, seed: int = 0) -> list[Sample]:
    """Multi-turn episodes: each turn's prompt is the system prompt, the task and the history so far.

    ``--group-size`` episodes share a task (a GRPO group); all share the system prompt.
    """
    rng = np.random.default_rng(seed)
    system = rng.integers(10, vocab, args.system).tolist()
    out = []
    for e in range(args.episodes):
        task = np.random.default_rng(seed + 1 + e // args.group_size).integers(10, vocab, args.task).tolist()
        history = system + task
        for _ in range(args.turns):
            response = rng.integers(10, vocab, int(rng.integers(*args.completion))).tolist()
            out.append(Sample(list(history), response, traj=e, advantage=float(rng.normal())))
            history = history + response + rng.integers(10, vocab, int(rng.integers(*args.observation))).tolist()
    return out


def step_phases(model, reference, samples, config, pad_id, former: bool) -> dict:
    """Seconds of π_old, π_ref and the update (and the update's losses) of one step's samples."""
    autocast = make_autocast("auto", next(model.parameters()).device)
    params = [p for p in model.parameters() if p.requires_grad]
    t0 = time.perf_counter()
    old = [None] * len(samples)
    if former or not old_is_current(config):
        old = score_logprobs(model, samples, config, pad_id, autocast)
    t1 = time.perf_counter()
    refs = reference_logprobs(model, reference, samples, config, pad_id, autocast)
    t2 = time.perf_counter()
    for s, o, r in zip(samples, old, refs):
        s.old_logprobs, s.ref_logprobs = o, r
    opt = torch.optim.AdamW(params, lr=1e-4)
    stats = update_policy(model, opt, samples, config, pad_id, np.random.default_rng(0), autocast)
    t3 = time.perf_counter()
    return {"π_old": t1 - t0, "π_ref": t2 - t1, "update": t3 - t2, "total": t3 - t0, "losses": stats}


def phases_main(args: argparse.Namespace) -> int:
    """The former and current step paths on the same samples from the same weights, interleaved."""
    from agemem_gym.adapters.grpo.state import build_models, return_freed_memory

    config = _bench_config(args, update_epochs=args.epochs, temperature=1.0)
    return_freed_memory(config.malloc_mmap_threshold)
    torch.manual_seed(0)
    model, reference, tok = build_models(config, None, torch.device(args.device))
    start = [p.detach().clone() for p in model.parameters() if p.requires_grad]
    samples = episode_samples(len(tok), args)
    variants = {"former": config.replace(packing="block-mask"), "current": config}
    runs: dict[str, list[dict]] = {name: [] for name in variants}
    for _ in range(args.repeats):
        for name, cfg in variants.items():
            with torch.no_grad():  # every run starts from the same weights
                for p, w in zip([p for p in model.parameters() if p.requires_grad], start):
                    p.copy_(w)
            fresh = [Sample(s.prompt_ids, s.response_ids, s.traj, s.advantage) for s in samples]
            runs[name].append(step_phases(model, reference, fresh, cfg, tok.pad_token_id, name == "former"))
    return _phases_report(args, samples, runs)


def _phases_report(args: argparse.Namespace, samples: list[Sample], runs: dict[str, list[dict]]) -> int:
    """The table (best of the repeats per phase, the ratio former / current) and the losses' agreement."""
    best = {
        name: {k: min(r[k] for r in rs) for k in ("π_old", "π_ref", "update", "total")} for name, rs in runs.items()
    }
    skipped = args.epochs == 1  # one epoch of one minibatch: the update's own pass gives π_old
    rows = [
        [k, best["former"][k], "skipped", "-"]
        if k == "π_old" and skipped
        else [k, best["former"][k], best["current"][k], best["former"][k] / max(best["current"][k], 1e-9)]
        for k in ("π_old", "π_ref", "update", "total")
    ]
    tokens = sum(len(s) for s in samples)
    load = os.getloadavg()
    print(
        f"{len(samples)} samples ({args.episodes} episodes × {args.turns} turns), {tokens} tokens, model {args.model}, "
        f"LoRA r{args.lora_rank}, row_tokens {args.row_tokens} × {args.rows_per_micro_batch}, {args.epochs} epoch(s), "
        f"{args.threads} thread(s), load {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
    )
    print(format_table(["phase", "former s", "current s", "ratio"], rows))
    keys = ("losses/policy", "losses/kl", "losses/clipfrac", "losses/entropy", "losses/grad_norm")
    former, current = runs["former"][0]["losses"], runs["current"][0]["losses"]
    gaps = {k: abs(former[k] - current[k]) for k in keys}
    print(
        "\nlosses (former / current / |gap|): "
        + ", ".join(f"{k} {former[k]:.6g} / {current[k]:.6g} / {gaps[k]:.2g}" for k in keys)
    )
    payload = {"meta": run_metadata(), "args": vars(args), "tokens": tokens, "load": load, "runs": runs, "best": best}
    write_json(args.json, payload)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny", help="tiny, smollm2 or a local folder")
    parser.add_argument("--samples", type=int, default=64)
    parser.add_argument("--prompt", type=int, nargs=2, default=[300, 1800], help="prompt length range")
    parser.add_argument("--completion", type=int, nargs=2, default=[16, 160], help="completion length range")
    parser.add_argument("--trl-batch", type=int, default=8, help="TRL per-device micro-batch")
    parser.add_argument("--row-tokens", type=int, default=2048)
    parser.add_argument("--rows-per-micro-batch", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--json", default=None)
    parser.add_argument("--memory", action="store_true", help="peak RSS of scoring + update, per variant")
    parser.add_argument("--lora-rank", type=int, default=0, help="--memory: LoRA rank (0: full fine-tuning)")
    parser.add_argument("--memory-child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--phases", action="store_true", help="π_old, π_ref, update: former vs current path")
    parser.add_argument("--episodes", type=int, default=8, help="--phases: episodes in the step")
    parser.add_argument("--group-size", type=int, default=4, help="--phases: episodes per task")
    parser.add_argument("--turns", type=int, default=4, help="--phases: turns (samples) per episode")
    parser.add_argument("--system", type=int, default=1010, help="--phases: system prompt tokens")
    parser.add_argument("--task", type=int, default=60, help="--phases: task tokens")
    parser.add_argument("--observation", type=int, nargs=2, default=[20, 80], help="--phases: tool result tokens")
    parser.add_argument("--epochs", type=int, default=2, help="--phases: update epochs")
    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.memory_child is not None:
        print(json.dumps(memory_child(args, json.loads(args.memory_child))))
        return 0
    if args.memory:
        return memory_main(args, [a for a in argv if a != "--memory"])
    if args.phases:
        return phases_main(args)

    dtype = getattr(torch, args.dtype)
    model, tok = load_model(args.model, dtype=dtype)
    model.to(args.device)
    samples = make_samples(args.samples, len(tok), tuple(args.prompt), tuple(args.completion), seed=0)
    tokens = sum(len(s) for s in samples)
    config = GRPOConfig(
        row_tokens=args.row_tokens, rows_per_micro_batch=args.rows_per_micro_batch, kl_beta=0.1, clip=0.2, lora_rank=0
    )
    ours_s, ours_pad = time_ours(model, samples, config, tok.pad_token_id, args.repeats)
    rows = [["agemem-gym (packed rows)", args.samples / ours_s, tokens / ours_s, ours_pad, ours_s]]
    payload = {
        "meta": run_metadata(),
        "args": vars(args),
        "tokens": tokens,
        "ours": {"seconds": ours_s, "padding": ours_pad},
    }
    trl = time_trl(model, tok, samples, args.trl_batch, args.repeats)
    if trl is not None:
        trl_s, trl_pad = trl
        rows.append(
            [f"TRL GRPOTrainer loss (batch {args.trl_batch})", args.samples / trl_s, tokens / trl_s, trl_pad, trl_s]
        )
        payload["trl"] = {"seconds": trl_s, "padding": trl_pad}
        payload["speedup"] = trl_s / ours_s
    print(f"{args.samples} samples, {tokens} tokens, model {args.model} on {args.device} ({args.dtype})")
    print(format_table(["update step", "samples/s", "tokens/s", "padding", "seconds"], rows))
    if trl is not None:
        print(f"\nspeed-up of ours over TRL: {payload['speedup']:.2f}x")
    write_json(args.json, payload)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
