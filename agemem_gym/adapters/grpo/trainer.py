"""The step-wise GRPO trainer, to be read top to bottom.

    for each step:
        collect B tasks × K rollouts (every turn of every stage is a sample)
        group-normalise the trajectory rewards, broadcast each advantage to its steps
        score the samples with the rollout policy (π_old) and the frozen reference
        μ epochs × minibatches: packed rows → clipped surrogate − β·KL → token mean → step
        log, checkpoint
    plot the training curve

Runs on CPU (float32) and GPU (bf16 autocast), alone or under ``accelerate launch`` (each
process collects its share of the groups; gradients are summed once per optimizer step).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import random
import time
from collections.abc import Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch

from agemem_gym.adapters.grpo import distributed as D
from agemem_gym.adapters.grpo.batching import Sample, pack_samples, padding_fraction, row_logprobs
from agemem_gym.adapters.grpo.checkpoint import latest_checkpoint, load_training_state, save_checkpoint
from agemem_gym.adapters.grpo.config import GRPOConfig
from agemem_gym.adapters.grpo.losses import group_advantages, kl_penalty, policy_surrogate
from agemem_gym.adapters.grpo.metrics import MetricLogger, episode_metrics, plot_training_curve
from agemem_gym.adapters.grpo.rollout import RolloutBatch, collect_groups, make_rollout_envs
from agemem_gym.error import missing_dependency
from agemem_gym.policies.llm.hf_policy import HFPolicy

__all__ = ["TrainResult", "train", "distractors_at"]


@dataclasses.dataclass(frozen=True)
class TrainResult:
    """What a run produced."""

    output_dir: Path
    metrics: list[dict[str, float]]
    checkpoint: Path | None
    plot: Path | None


# ============================================================================ setup
def _accelerator() -> Any:
    try:
        from accelerate import Accelerator
    except ImportError as exc:
        raise missing_dependency("accelerate", "train") from exc
    mixed = "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "no"
    return Accelerator(mixed_precision=mixed)


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _build_model(config: GRPOConfig, resume: Path | None, device: torch.device) -> tuple[Any, Any, Any]:
    """``(policy model, reference model or None, tokenizer)``; LoRA models use the base as reference."""
    from agemem_gym.policies.llm.models import load_model

    extra = {"seed": config.seed} if config.model in ("tiny", "tiny-vocab") else {}
    model, tok = load_model(config.model, **extra)
    if config.lora_rank:
        try:
            from peft import LoraConfig, PeftModel, get_peft_model
        except ImportError as exc:
            raise missing_dependency("peft", "train") from exc
        if resume is not None:
            model = PeftModel.from_pretrained(model, str(resume / "model"), is_trainable=True)
        else:
            lora = LoraConfig(
                r=config.lora_rank,
                lora_alpha=config.lora_alpha,
                lora_dropout=0.0,
                target_modules="all-linear",
                task_type="CAUSAL_LM",
            )
            model = get_peft_model(model, lora)
        return model.to(device), None, tok
    if resume is not None:
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained(str(resume / "model"), dtype=torch.float32, local_files_only=True)
    reference = None
    if config.kl_beta > 0:
        source = model if resume is None else load_model(config.model, **extra)[0]
        reference = copy.deepcopy(source).to(device).eval().requires_grad_(False)
    return model.to(device), reference, tok


def distractors_at(step: int, config: GRPOConfig, full: int) -> int:
    """The curriculum's Stage-2 distractor count at ``step`` (``full`` once warmed up)."""
    if step < config.stage2_warmup_steps:
        return 0
    if config.distractor_ramp_steps and full > 1:
        done = step - config.stage2_warmup_steps
        return min(full, 1 + (full - 1) * done // config.distractor_ramp_steps)
    return full


# ============================================================================ scoring
def _score(model: Any, samples: Sequence[Sample], config: GRPOConfig, pad_id: int) -> list[torch.Tensor]:
    """Per-token log-probs of every sample's response (no gradient)."""
    out: list[torch.Tensor | None] = [None] * len(samples)
    rows = pack_samples(samples, max(config.row_tokens, max(len(s) for s in samples)))
    with torch.no_grad():
        for start in range(0, len(rows), config.rows_per_micro_batch):
            lp, _ = row_logprobs(
                model,
                rows[start : start + config.rows_per_micro_batch],
                samples,
                pad_id=pad_id,
                temperature=config.temperature,
            )
            for i, v in lp.items():
                out[i] = v.detach().float().cpu()
    return out  # type: ignore[return-value]


def _reference_logprobs(
    model: Any, reference: Any, samples: Sequence[Sample], config: GRPOConfig, pad_id: int
) -> list[torch.Tensor]:
    if reference is not None:
        return _score(reference, samples, config, pad_id)
    with model.disable_adapter():  # LoRA: the frozen base model is the reference
        return _score(model, samples, config, pad_id)


# ============================================================================ update
def _minibatch_loss(
    model: Any,
    samples: Sequence[Sample],
    rows: Sequence[Any],
    config: GRPOConfig,
    pad_id: int,
    total_tokens: float,
    autocast: Any,
) -> dict[str, float]:
    """Forward/backward one minibatch micro-batch by micro-batch; return its statistics."""
    stats = {"loss": 0.0, "kl": 0.0, "clipped": 0.0, "entropy": 0.0, "tokens": 0.0}
    device = next(model.parameters()).device
    for start in range(0, len(rows), config.rows_per_micro_batch):
        micro = rows[start : start + config.rows_per_micro_batch]
        with autocast():
            lp, entropy = row_logprobs(
                model, micro, samples, pad_id=pad_id, temperature=config.temperature, with_entropy=True
            )
        ids = list(lp)
        logp = torch.cat([lp[i] for i in ids]).unsqueeze(0)  # (1, P)
        old = torch.cat([samples[i].old_logprobs for i in ids]).to(device).unsqueeze(0)  # (1, P)
        adv = torch.cat([torch.full((len(lp[i]),), samples[i].advantage) for i in ids]).to(device).unsqueeze(0)
        per_token, clipped = policy_surrogate(logp, old, adv, config.clip, config.clip_high)  # (1, P)
        kl = torch.zeros_like(per_token)
        if config.kl_beta > 0:
            ref = torch.cat([samples[i].ref_logprobs for i in ids]).to(device).unsqueeze(0)
            kl = kl_penalty(logp, ref, config.kl_estimator)
        weights = _token_weights(lp, ids, samples, config, total_tokens).to(device)  # (1, P)
        loss = ((per_token + config.kl_beta * kl) * weights).sum()
        loss.backward()
        n = float(logp.numel())
        stats["loss"] += float(loss.detach())
        stats["kl"] += float(kl.detach().sum())
        stats["clipped"] += float(clipped.float().sum())
        stats["entropy"] += float(entropy) * n
        stats["tokens"] += n
    return stats


def _token_weights(
    lp: dict[int, torch.Tensor], ids: list[int], samples: Sequence[Sample], config: GRPOConfig, total_tokens: float
) -> torch.Tensor:
    """Per-token loss weights summing to 1 over the (global) minibatch.

    Token-mean: ``1 / tokens in the minibatch``. Sequence-mean: ``1 / (sample length × samples
    in the minibatch)``, so micro-batches and ranks add up to the minibatch mean either way.
    """
    if config.loss_aggregation == "token-mean":
        return torch.full((1, sum(len(lp[i]) for i in ids)), 1.0 / total_tokens)
    return torch.cat([torch.full((len(lp[i]),), samples[i].seq_weight) for i in ids]).unsqueeze(0)


def _update(
    model: Any,
    optimizer: torch.optim.Optimizer,
    samples: list[Sample],
    config: GRPOConfig,
    pad_id: int,
    rng: np.random.Generator,
    autocast: Any,
) -> dict[str, float]:
    params = [p for p in model.parameters() if p.requires_grad]
    totals = {"loss": 0.0, "kl": 0.0, "clipped": 0.0, "entropy": 0.0, "tokens": 0.0, "grad_norm": 0.0, "padding": 0.0}
    n_updates = 0
    model.train()
    for _ in range(config.update_epochs):
        # one minibatch: keep the scoring order, so the rows (and the forward pass) are the same
        # as for the old log-probs and the ratio is exactly 1 before the first step
        order = rng.permutation(len(samples)) if config.minibatches > 1 else np.arange(len(samples))
        for part in np.array_split(order, config.minibatches):
            mb = [samples[int(i)] for i in part]
            local_tokens = sum(len(s.response_ids) for s in mb)
            total_tokens = max(1.0, D.all_sum(local_tokens))  # every rank divides by the global count
            n_seqs = max(1.0, D.all_sum(len(mb)))
            for s in mb:
                s.seq_weight = 1.0 / (max(1, len(s.response_ids)) * n_seqs)
            optimizer.zero_grad(set_to_none=True)
            if mb:
                rows = pack_samples(mb, max(config.row_tokens, max(len(s) for s in mb)))
                totals["padding"] += padding_fraction(rows, config.rows_per_micro_batch)
                stats = _minibatch_loss(model, mb, rows, config, pad_id, total_tokens, autocast)
                for k in ("loss", "kl", "clipped", "entropy", "tokens"):
                    totals[k] += stats[k]
            D.sync_gradients(params)
            if config.max_grad_norm:
                totals["grad_norm"] += float(torch.nn.utils.clip_grad_norm_(params, config.max_grad_norm))
            optimizer.step()
            n_updates += 1
    tokens = max(1.0, totals["tokens"])
    return {
        "losses/policy": totals["loss"] / max(1, n_updates),
        "losses/kl": totals["kl"] / tokens,
        "losses/clipfrac": totals["clipped"] / tokens,
        "losses/entropy": totals["entropy"] / tokens,
        "losses/grad_norm": totals["grad_norm"] / max(1, n_updates),
        "perf/padding": totals["padding"] / max(1, n_updates),
    }


_UPDATE_KEYS = ("losses/policy", "losses/kl", "losses/clipfrac", "losses/entropy", "losses/grad_norm", "perf/padding")


# ============================================================================ one step
def _attach_advantages(batch: RolloutBatch, config: GRPOConfig) -> torch.Tensor:
    rewards = torch.tensor([t.reward for t in batch.trajectories], dtype=torch.float64)
    advantages = group_advantages(rewards, config.group_size, config.adv_eps)  # (B*K,)
    for traj, adv in zip(batch.trajectories, advantages.tolist()):
        for i in traj.samples:
            batch.samples[i].advantage = float(adv)
    return advantages


def _attach_masks(samples: Sequence[Sample], grammar: Any) -> None:
    """Replay each constrained turn through its grammar: the masks of the distribution it was sampled from."""
    for s in samples:
        if s.grammar is not None and s.allowed is None:
            s.allowed = np.packbits(grammar.masks(s.grammar, s.response_ids).numpy(), axis=1)


def _step_metrics(batch: RolloutBatch, rollout_s: float) -> dict[str, float]:
    trajs = D.all_gather_objects([(t.reward, t.info) for t in batch.trajectories])
    out = episode_metrics([r for r, _ in trajs], [i for _, i in trajs])
    out["tokens/response"] = D.all_sum(batch.generated_tokens) / max(1.0, D.all_sum(len(batch.samples)))
    out["perf/rollout_s"] = rollout_s
    return out


def train(config: GRPOConfig, *, progress: bool = True) -> TrainResult:
    """Run step-wise GRPO with ``config`` (see the module docstring).

    Args:
        config: Everything (presets: :data:`agemem_gym.adapters.grpo.config.PRESETS`).
        progress: Show a tqdm bar (rank 0).

    Returns:
        The run folder, the logged metrics, the last checkpoint and the plot.
    """
    if config.torch_threads:
        torch.set_num_threads(config.torch_threads)
    acc = _accelerator()
    rank, world = D.world()
    out_dir = Path(config.output_dir)
    resume = latest_checkpoint(out_dir) if config.resume else None
    _seed_everything(config.seed)
    model, reference, tok = _build_model(config, resume, acc.device)
    params = [p for p in model.parameters() if p.requires_grad]
    D.broadcast_parameters(params)
    optimizer = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=config.weight_decay)
    rng = np.random.default_rng(config.seed)  # task sampling and shuffling: identical on every rank
    start = load_training_state(resume, optimizer, rng) + 1 if resume is not None else 0
    policy = HFPolicy(
        model,
        tok,
        max_new_tokens=config.max_new_tokens,
        temperature=config.temperature,
        batch_size=config.generation_batch_size,
        constrained=config.constrained,
    )
    local_tasks = len(range(rank, config.tasks_per_step, world))
    env_kwargs = {"tokenizer": tok, **dict(config.env_kwargs)}
    record = None if config.record_dir is None else str(Path(config.record_dir) / f"rank{rank}")
    envs = make_rollout_envs(
        config.env_id,
        local_tasks * config.group_size,
        env_kwargs,
        config.async_envs,
        record=record,
        record_every=config.record_every,
    )
    panel = list(envs.get_attr("unwrapped")[0].task_ids)
    full_distractors = int(envs.get_attr("unwrapped")[0].config.num_distractors)
    logger = MetricLogger(out_dir, tensorboard=config.tensorboard) if rank == 0 else None
    autocast = acc.autocast if acc.mixed_precision != "no" else nullcontext
    if rank == 0:
        (out_dir / "config.json").write_text(json.dumps(config.to_dict(), indent=2))
    bar = _bar(range(start, config.num_steps), progress and rank == 0)
    checkpoint = resume
    try:
        for step in bar:
            n_distractors = distractors_at(step, config, full_distractors)
            envs.call("configure", num_distractors=n_distractors)
            tasks = [panel[i] for i in rng.choice(len(panel), size=config.tasks_per_step, replace=True)]
            t0 = time.perf_counter()
            model.eval()
            policy.reseed(config.seed * 1_000_003 + step * 7919 + rank)  # a resumed run samples the same
            batch = collect_groups(
                envs,
                policy,
                tasks[rank::world],
                config.group_size,
                seed=config.seed * 1_000_003
                + step * config.tasks_per_step * config.group_size
                + rank * local_tasks * config.group_size,
            )
            rollout_s = time.perf_counter() - t0
            _attach_advantages(batch, config)
            metrics = _step_metrics(batch, rollout_s)
            t1 = time.perf_counter()
            # A group whose K rewards are equal has zero advantage: no policy gradient. Its only
            # signal would be the KL term at ~zero divergence, i.e. float noise that Adam's
            # normalisation blows up into real updates, so such samples are left out.
            samples = [s for s in batch.samples if s.advantage != 0.0]
            metrics["perf/informative_fraction"] = D.all_sum(len(samples)) / max(1.0, D.all_sum(len(batch.samples)))
            _attach_masks(samples, policy.grammar)
            keep = {id(s) for s in samples}
            rollout_lps = [lp for s, lp in zip(batch.samples, batch.rollout_logprobs) if id(s) in keep]
            old = _score(model, samples, config, tok.pad_token_id) if samples else []
            refs = (
                _reference_logprobs(model, reference, samples, config, tok.pad_token_id)
                if samples and config.kl_beta > 0
                else [None] * len(samples)
            )
            for s, o, r in zip(samples, old, refs):
                s.old_logprobs, s.ref_logprobs = o, r
            mismatch = [float((o - torch.tensor(lp)).abs().mean()) for o, lp in zip(old, rollout_lps) if lp]
            if D.all_sum(len(samples)) > 0:  # the same decision on every rank
                metrics.update(_update(model, optimizer, samples, config, tok.pad_token_id, rng, autocast))
            else:
                metrics.update(dict.fromkeys(_UPDATE_KEYS, float("nan")))
            update_s = time.perf_counter() - t1
            n_samples = D.all_sum(len(samples))
            n_tokens = D.all_sum(sum(len(s) for s in samples))
            metrics.update(
                {
                    "curriculum/distractors": float(n_distractors),
                    "losses/logprob_mismatch": float(np.mean(mismatch)) if mismatch else 0.0,
                    "perf/update_s": update_s,
                    "perf/samples_per_s": n_samples * config.update_epochs / max(update_s, 1e-9),
                    "perf/tokens_per_s": n_tokens * config.update_epochs / max(update_s, 1e-9),
                    "perf/samples": n_samples,
                }
            )
            if logger is not None:
                logger.log(step, metrics)
                if hasattr(bar, "set_postfix"):
                    bar.set_postfix(reward=f"{metrics['reward/mean']:.3f}", kl=f"{metrics['losses/kl']:.4f}")
            if (step + 1) % config.save_every == 0 or step + 1 == config.num_steps:
                if rank == 0:
                    checkpoint = save_checkpoint(out_dir, step, model, tok, optimizer, rng, config.to_dict())
                acc.wait_for_everyone()
    finally:
        envs.close()
    _check_replicas(params)
    rows = logger.read() if logger is not None else []
    plot = plot_training_curve(rows, out_dir / "training_curve.png") if rows else None
    if logger is not None:
        logger.close()
    return TrainResult(out_dir, rows, checkpoint, plot)


def _check_replicas(params: list[torch.nn.Parameter]) -> None:
    """Every rank must end with the same weights (gradients are summed by hand)."""
    if D.world()[1] == 1:
        return
    checksum = float(sum(p.detach().double().sum() for p in params))
    sums = D.all_gather_objects([checksum])
    if max(sums) - min(sums) > 1e-6 * max(1.0, abs(sums[0])):
        raise RuntimeError(f"replicas diverged: parameter checksums {sums}")


def _bar(steps: range, enabled: bool) -> Any:
    if not enabled:
        return steps
    from tqdm.auto import tqdm

    return tqdm(steps, desc="GRPO", unit="step")
