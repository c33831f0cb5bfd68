"""The trainer's precision path on the device it runs on: ratio exactly 1 at zero update, and update speed.

Scores a batch of SmolLM2-sized samples under π_old and π_ref, then runs the update with a
learning rate of 0 (two epochs) and records every log-ratio and KL value the loss sees. With
one precision context for scoring and update (``precision``) and one minibatch (the rows of
the update are then the rows scoring packed), both must be exactly 0; the script exits 1 when
they are not. With two minibatches the samples are reshuffled into other rows, so the ratio
is 1 only up to rounding: that deviation is printed too. It then times scoring and update in fp32
and bf16 (tokens per second, same samples, same device) — the ratio is bf16's speed-up.

The model is SmolLM2-135M-Instruct when its weights are installed (``--model smollm2``), or a
randomly initialised model of the same shape (``--model smollm2-shape``): the numerics of the
check do not depend on the weights.

    python benchmarks/check_gpu_trainer.py --model smollm2 --samples 32 --json results/gpu_trainer.json
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from _common import format_table, run_metadata, write_json

from agemem_gym.adapters.grpo import update
from agemem_gym.adapters.grpo.batching import Sample
from agemem_gym.adapters.grpo.config import load_config


def smollm2_shape() -> tuple[Any, Any]:
    """A random model with SmolLM2-135M's architecture, and a stand-in pad id."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
        num_attention_heads=9, num_key_value_heads=3, max_position_embeddings=8192,
        rope_theta=100000.0, tie_word_embeddings=True, rms_norm_eps=1e-5,
    )  # fmt: skip
    torch.manual_seed(0)
    return LlamaForCausalLM(config).float(), 2


def load(name: str) -> tuple[Any, int]:
    if name == "smollm2-shape":
        return smollm2_shape()
    from agemem_gym.policies.llm.models import load_model

    model, tok = load_model(name)
    return model, int(tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id)


def samples_like_rollouts(n: int, vocab: int, seed: int = 0) -> list[Sample]:
    """Turns the size of a Probe-Recall rollout: ~1,100-1,300 prompt tokens, 40-96 response tokens."""
    rng = np.random.default_rng(seed)
    out = []
    for t in range(n):
        prompt = rng.integers(10, vocab, int(rng.integers(1100, 1300))).tolist()
        response = rng.integers(10, vocab, int(rng.integers(40, 96))).tolist()
        out.append(Sample(prompt, response, traj=t, advantage=float(rng.choice([-1.0, 1.0]))))
    return out


class Recorder:
    """Wraps the loss terms to keep the largest |log-ratio| and |KL| the update saw."""

    def __init__(self) -> None:
        self.max_logratio = 0.0
        self.max_kl = 0.0
        self._surrogate, self._kl = update.policy_surrogate, update.kl_penalty

    def __enter__(self) -> Recorder:
        def surrogate(logp: Any, old: Any, *a: Any, **k: Any) -> Any:
            self.max_logratio = max(self.max_logratio, float((logp.detach() - old).abs().max()))
            return self._surrogate(logp, old, *a, **k)

        def kl(logp: Any, ref: Any, estimator: str) -> Any:
            out = self._kl(logp, ref, estimator)
            self.max_kl = max(self.max_kl, float(out.detach().abs().max()))
            return out

        update.policy_surrogate, update.kl_penalty = surrogate, kl  # type: ignore[assignment]
        return self

    def __exit__(self, *exc: Any) -> None:
        update.policy_surrogate, update.kl_penalty = self._surrogate, self._kl


def run(
    model: Any, reference: Any, samples: list[Sample], precision: str, pad_id: int, minibatches: int
) -> dict[str, float]:
    """Score, then a zero-learning-rate update; the recorded deviations and the tokens/s of each phase."""
    import torch

    config = load_config(
        "learning-probe", learning_rate=0.0, precision=precision, update_epochs=2, minibatches=minibatches, kl_beta=0.1,
        lora_rank=0, temperature=1.0, row_tokens=4096, rows_per_micro_batch=2,
    )  # fmt: skip
    device = next(model.parameters()).device
    autocast = update.make_autocast(precision, device)
    tokens = sum(len(s) for s in samples)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    sync()
    t0 = time.perf_counter()
    old = update.score_logprobs(model, samples, config, pad_id, autocast)
    ref = update.reference_logprobs(model, reference, samples, config, pad_id, autocast)
    sync()
    score_s = time.perf_counter() - t0
    for s, o, r in zip(samples, old, ref):
        s.old_logprobs, s.ref_logprobs = o, r
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=0.0)
    with Recorder() as rec:
        t1 = time.perf_counter()
        stats = update.update_policy(model, optimizer, samples, config, pad_id, np.random.default_rng(0), autocast)
        sync()
        update_s = time.perf_counter() - t1
    return {
        "max_logratio": rec.max_logratio,
        "max_kl": rec.max_kl,
        "clipfrac": stats["losses/clipfrac"],
        "score_tok_s": 2 * tokens / score_s,  # π_old and π_ref passes
        "update_tok_s": 2 * tokens / update_s,  # two epochs
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2", help="smollm2, smollm2-shape or a model folder")
    parser.add_argument("--samples", type=int, default=32)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    import torch

    device = torch.device(args.device if args.device != "cuda" or torch.cuda.is_available() else "cpu")
    model, pad_id = load(args.model)
    model.to(device)
    reference = copy.deepcopy(model).eval().requires_grad_(False)
    samples = samples_like_rollouts(args.samples, int(model.config.vocab_size))
    for p in ("bf16", "fp32"):  # warm-up: kernel selection and allocator growth stay out of the timings
        run(model, reference, copy.deepcopy(samples[:4]), p, pad_id, 1)
    cases = [(p, m) for p in ("bf16", "fp32") for m in (1, 2)]
    results = {f"{p}/{m}": run(model, reference, copy.deepcopy(samples), p, pad_id, m) for p, m in cases}
    rows = [
        [*k.split("/"), r["max_logratio"], r["max_kl"], r["clipfrac"], r["score_tok_s"], r["update_tok_s"]]
        for k, r in results.items()
    ]
    print(f"device: {torch.cuda.get_device_name(device) if device.type == 'cuda' else 'cpu'}, model {args.model}, "
          f"{len(samples)} samples, {sum(len(s) for s in samples):,} tokens")  # fmt: skip
    headers = ["precision", "minibatches", "max |log ratio|", "max |KL|", "clipfrac", "score tok/s", "update tok/s"]
    print(format_table(headers, rows))
    speedup = results["bf16/1"]["update_tok_s"] / results["fp32/1"]["update_tok_s"]
    print(f"\nbf16 update speed-up over fp32: {speedup:.2f}x")
    if args.json:
        write_json(args.json, {"meta": run_metadata(), "device": str(device), "model": args.model, "results": results})
    one = [r for k, r in results.items() if k.endswith("/1")]
    exact = all(r["max_logratio"] == 0.0 and r["max_kl"] == 0.0 for r in one)
    print("one minibatch: ratio exactly 1 and KL exactly 0 at zero update:", "yes" if exact else "NO")
    return 0 if exact else 1


if __name__ == "__main__":
    sys.exit(main())
