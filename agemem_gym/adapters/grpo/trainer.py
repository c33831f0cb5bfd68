"""The step-wise GRPO trainer, to be read top to bottom.

    build the run: model + reference + optimizer (resumed from the newest checkpoint)
    for each step:
        schedule the curriculum's distractors
        collect B tasks × K rollouts (every turn of every stage is a sample)
        group-normalise the trajectory rewards, broadcast each advantage to its steps
            (credit = "memory-state": fork each rollout after Stage 1 into M continuations and
            credit Stage 1 with its memory state's value: fork.py, credit.py)
        keep every sample (zero-advantage ones too: they carry the KL term), replay the grammar masks
        score them with the rollout policy (π_old; with one epoch of one minibatch the update's own
            pass gives it) and the frozen reference, in the update's precision, shared prefixes once
        μ epochs × minibatches: packed rows → clipped surrogate + β·KL → token mean → step
        log (with the generated tokens so far), checkpoint; stop early once the generated-token budget is spent
    check the replicas agree, plot the training curve

Runs on CPU (float32) and GPU (bf16 autocast; ``precision`` chooses), alone or under ``accelerate launch`` (each
process collects its share of the groups; gradients are summed once per optimizer step), with the weights
replicated, sharded with FSDP2 (``sharding``: rollouts and scoring on weights gathered once per phase, update
micro-batches padded to one count over ranks; :mod:`~agemem_gym.adapters.grpo.sharding`) or run by DeepSpeed
ZeRO-2/3 (the same padding; ZeRO-3 gathers the weights whole, hooks off, per phase and micro-batch;
:mod:`~agemem_gym.adapters.grpo.zero`).
The losses are in :mod:`~agemem_gym.adapters.grpo.losses`, the update loop in
:mod:`~agemem_gym.adapters.grpo.update`, the run's state in :mod:`~agemem_gym.adapters.grpo.state`.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch

from agemem_gym.adapters.grpo import distributed as D
from agemem_gym.adapters.grpo import sharding as S
from agemem_gym.adapters.grpo import zero as Z
from agemem_gym.adapters.grpo.batching import Sample
from agemem_gym.adapters.grpo.checkpoint import save_checkpoint
from agemem_gym.adapters.grpo.config import GRPOConfig
from agemem_gym.adapters.grpo.credit import credit_stats
from agemem_gym.adapters.grpo.fork import ForkedBatch, attach_fork_advantages, collect_forked
from agemem_gym.adapters.grpo.interrupt import InterruptGuard, TrainingInterrupted
from agemem_gym.adapters.grpo.losses import AdvantageNorm, broadcast_to_steps
from agemem_gym.adapters.grpo.metrics import StepProgress, episode_metrics, plot_training_curve
from agemem_gym.adapters.grpo.rollout import RolloutBatch, collect_groups
from agemem_gym.adapters.grpo.state import TrainState, build_state
from agemem_gym.adapters.grpo.update import (
    UPDATE_KEYS,
    micro_batches,
    minibatch_split,
    old_is_current,
    reference_logprobs,
    score_logprobs,
    update_policy,
)

__all__ = ["TrainResult", "train", "distractors_at"]


@dataclasses.dataclass(frozen=True)
class TrainResult:
    """What a run produced."""

    output_dir: Path
    metrics: list[dict[str, float]]
    checkpoint: Path | None
    plot: Path | None


def train(config: GRPOConfig, *, progress: bool = True) -> TrainResult:
    """Run step-wise GRPO with ``config`` (see the module docstring).

    Args:
        config: Everything (presets: :data:`agemem_gym.adapters.grpo.config.PRESETS`).
        progress: Show tqdm bars (rank 0): one over the steps and, under it, one over the
            current step's phase (rollout turns, scoring and update micro-batches).

    Returns:
        The run folder, the logged metrics, the last checkpoint and the plot.

    Raises:
        InvalidConfig: ``config.output_dir`` holds a run this config may not reuse.
        TrainingInterrupted: On SIGINT (one process), after saving the last completed step.
    """
    state = build_state(config)
    if state.checkpoint is not None and state.rank == 0:
        print(f"resuming from {state.output_dir} at step {state.start_step}", flush=True)
    if state.sharded and state.rank == 0:
        how = {"fsdp2": "parameters sharded with FSDP2", "zero2": "DeepSpeed ZeRO-2", "zero3": "DeepSpeed ZeRO-3"}
        print(f"{how[state.layout]} over {state.world} processes", flush=True)
    checkpoint, done, snapshot = state.checkpoint, state.start_step - 1, None
    bar = _bar(state.start_step, config.num_steps, progress and state.rank == 0)
    state.progress = StepProgress(progress and state.rank == 0)
    guard = InterruptGuard()
    try:
        with guard if state.world == 1 else nullcontext():  # one rank cannot save a checkpoint alone
            for step in bar:
                if _budget_spent(state):  # a resumed run whose budget was spent already
                    break
                snapshot = _rng_snapshot(state)
                metrics = _train_step(state, step, guard)
                _count_generated(state, metrics)
                _log(state, step, metrics, bar)
                checkpoint = _checkpoint(state, step) or checkpoint
                done, snapshot = step, None
                guard.leave_critical()
                if _stop_for_budget(state, step):
                    break
            _close_bar(bar)  # a budget stop leaves the bar short of num_steps
    except KeyboardInterrupt:
        state.progress.close()
        if state.world > 1:
            raise TrainingInterrupted(done, checkpoint, saved=False) from None
        _close_bar(bar)
        if snapshot is not None:  # a step cut short before its update: as if it never began
            _rng_restore(state, snapshot)
        raise _interrupted(state, done, checkpoint) from None
    finally:
        state.progress.close()
        state.envs.close()
        if state.fork_envs is not None:
            state.fork_envs.close()
    return _finish(state, checkpoint)


def _train_step(state: TrainState, step: int, guard: InterruptGuard) -> dict[str, float]:
    """One GRPO step, from the curriculum to the optimizer; its metrics (SIGINT waits from the update on)."""
    n_distractors = _schedule_distractors(state, step)
    t0 = time.perf_counter()
    batch = _collect_rollouts(state, step)
    rollout_s = time.perf_counter() - t0
    metrics = _attach_advantages(batch, state.config)
    metrics.update(_rollout_metrics(batch, rollout_s))
    t1 = time.perf_counter()
    informative = sum(s.advantage != 0.0 for s in batch.samples)
    metrics["perf/informative_fraction"] = D.all_sum(informative) / max(1.0, D.all_sum(len(batch.samples)))
    samples = _training_samples(batch, state.config)
    _attach_masks(samples, state.policy.grammar)
    _attach_logprobs(state, samples)
    guard.enter_critical()
    metrics.update(_update(state, samples))
    state.progress.close()
    mismatch = _logprob_mismatch(samples, batch)  # after the update: it may be what sets π_old
    metrics.update(_update_metrics(state.config, samples, n_distractors, mismatch, time.perf_counter() - t1))
    return metrics


# ============================================================================ the steps, in order
def distractors_at(step: int, config: GRPOConfig, full: int) -> int:
    """The curriculum's Stage-2 distractor count at ``step`` (``full`` once warmed up)."""
    if step < config.stage2_warmup_steps:
        return 0
    if config.distractor_ramp_steps and full > 1:
        done = step - config.stage2_warmup_steps
        return min(full, 1 + (full - 1) * done // config.distractor_ramp_steps)
    return full


def _schedule_distractors(state: TrainState, step: int) -> int:
    """Set every rollout env's distractor count for this step; return it."""
    n_distractors = distractors_at(step, state.config, state.full_distractors)
    for envs in (state.envs, state.fork_envs):
        if envs is not None:  # a restored snapshot brings its own config; set both all the same
            envs.call("configure", num_distractors=n_distractors)
    return n_distractors


def _collect_rollouts(state: TrainState, step: int) -> RolloutBatch:
    """This rank's share of B tasks × K rollouts, seeded by the step (a resumed run samples the same).

    The B tasks and the env seed of each task's K rollouts depend on the run's RNG and the step
    only, not on the number of processes (:func:`~agemem_gym.adapters.grpo.distributed.task_share`);
    the sampled tokens do (each rank samples its share from its own stream).
    """
    config, k = state.config, state.config.group_size
    drawn = state.rng.choice(len(state.panel), size=config.tasks_per_step, replace=True)  # same on every rank
    share = D.task_share(config.tasks_per_step, state.rank, state.world)
    tasks = [state.panel[drawn[i]] for i in share]
    state.model.eval()
    state.policy.reseed(config.seed * 1_000_003 + step * 7919 + state.rank)
    seed = config.seed * 1_000_003 + (step * config.tasks_per_step + share.start) * k  # task i: seed + i·K + j
    on_turns = state.progress.phase("rollout", None, "turn")
    with _gathered(state, state.model):  # sharded: ranks generate for as many turns as they play
        if state.fork_envs is not None:
            m, fork_stage = config.fork_continuations, config.fork_stage
            return collect_forked(state.envs, state.fork_envs, state.policy, tasks, k, m, seed, fork_stage, on_turns)
        return collect_groups(state.envs, state.policy, tasks, k, seed=seed, on_turns=on_turns)


def _advantage_norm(config: GRPOConfig) -> AdvantageNorm:
    """The group normalisation ``config.advantage`` names (the paper's, with a std floor, or mean-only)."""
    return AdvantageNorm(config.advantage, config.adv_std_floor, config.adv_eps)


def _attach_advantages(batch: RolloutBatch, config: GRPOConfig) -> dict[str, float]:
    """Set every sample's advantage (trajectory or memory-state credit); the credit's metrics."""
    if isinstance(batch, ForkedBatch):
        returns = attach_fork_advantages(batch, config.group_size, config.credit_weight, _advantage_norm(config))
        return _credit_metrics(batch, returns)
    _attach_trajectory_advantages(batch, config)
    return {}


def _credit_metrics(batch: ForkedBatch, returns: torch.Tensor) -> dict[str, float]:
    """Memory-state credit's sample counts and spreads, over every rank (each task weighs the same)."""
    tasks = returns.shape[0]
    stats = credit_stats(returns) if tasks else {}
    keys = ["credit/value_std", "credit/local_std", "credit/local_zero_fraction"]
    local = [batch.stage1_samples, len(batch.samples) - batch.stage1_samples, tasks]
    summed = D.all_sum_many(local + [stats[key] * tasks if tasks else 0.0 for key in keys])
    out = {key: value / max(1.0, summed[2]) for key, value in zip(keys, summed[3:])}
    return {**out, "credit/stage1_samples": summed[0], "credit/continuation_samples": summed[1]}


def _attach_trajectory_advantages(batch: RolloutBatch, config: GRPOConfig) -> None:
    """Group-normalise the trajectory rewards; every step of a trajectory gets its advantage."""
    rewards = torch.tensor([t.reward for t in batch.trajectories], dtype=torch.float64)  # (N,)
    advantages = _advantage_norm(config)(rewards, config.group_size)  # (N,)
    # A rollout an env worker lost (``worker_error``: a Ray actor died and its episode could not be
    # replayed) has no real reward; normalising its group against a made-up 0 would teach noise,
    # so that group gets zero advantage (its samples still pay the KL term).
    lost = torch.tensor([lost_rollout(t.info) for t in batch.trajectories], dtype=torch.bool)  # (N,)
    lost_groups = lost.view(-1, config.group_size).any(dim=1, keepdim=True).expand(-1, config.group_size)
    advantages = advantages.masked_fill(lost_groups.reshape(-1), 0.0)
    step_traj = torch.tensor([s.traj for s in batch.samples], dtype=torch.long)  # (S,)
    for sample, adv in zip(batch.samples, broadcast_to_steps(advantages, step_traj).tolist()):
        sample.advantage = float(adv)


def lost_rollout(info: dict[str, Any]) -> bool:
    """Whether an env worker lost this rollout (its episode ended with ``info["worker_error"]``)."""
    return bool(info.get("worker_error"))


def _rollout_metrics(batch: RolloutBatch, rollout_s: float) -> dict[str, float]:
    """Episode metrics over every rank's trajectories, response length and rollout time."""
    trajs = D.all_gather_objects([(t.reward, t.info) for t in batch.trajectories])
    out = episode_metrics([r for r, _ in trajs], [i for _, i in trajs])
    generated = D.all_sum(batch.generated_tokens)
    out["tokens/response"] = generated / max(1.0, D.all_sum(len(batch.samples)))
    out["perf/generated_tokens"] = generated  # the budget credit modes are compared at
    out["perf/rollout_s"] = rollout_s
    out["episode/lost_to_workers"] = float(sum(lost_rollout(i) for _, i in trajs))
    return out


def _training_samples(batch: RolloutBatch, config: GRPOConfig) -> list[Sample]:
    """The samples the update sees: all of them, or only the non-zero-advantage ones."""
    # A group whose K rewards are equal has exactly zero advantage (losses.group_advantages):
    # no policy gradient, but the objective's β·KL term still covers its tokens, so by default
    # they stay in the loss. ``drop_zero_advantage`` trades that term for speed.
    if config.drop_zero_advantage:
        return [s for s in batch.samples if s.advantage != 0.0]
    return list(batch.samples)


def _attach_masks(samples: Sequence[Sample], grammar: Any) -> None:
    """Replay each constrained turn through its grammar: the masks of the distribution it was sampled from."""
    todo = [s for s in samples if s.grammar is not None and s.allowed is None]
    if not todo:
        return
    # all turns in lockstep on the grammar engine's thread pool, not one token at a time
    masks = grammar.masks_many([s.grammar for s in todo], [s.response_ids for s in todo])
    for s, mask in zip(todo, masks):
        s.allowed = np.packbits(mask.numpy(), axis=1)


def _attach_logprobs(state: TrainState, samples: list[Sample]) -> None:
    """Score ``samples`` under π_old (unless the update's own pass gives it) and the reference."""
    config, pad_id, autocast = state.config, state.tokenizer.pad_token_id, state.autocast
    # scored minibatch by minibatch, packed as the update's first epoch packs them (it draws
    # the same split from the run's RNG): same rows, same forward passes, so the ratio is
    # exactly 1 before the first optimizer step with several minibatches too (repacking
    # moved bf16 log-probs by up to 0.27 on SmolLM2)
    split = minibatch_split(len(samples), config.minibatches, copy.deepcopy(state.rng))
    parts = [[samples[int(i)] for i in part] for part in split]
    order = [int(i) for part in split for i in part]
    phases, n_micro = state.progress, sum(micro_batches(part, config) for part in parts)
    old: Sequence[torch.Tensor | None] = [None] * len(samples)  # None: the update's detached log-probs
    refs: Sequence[torch.Tensor | None] = [None] * len(samples)
    with _gathered(state, state.model, state.reference):  # sharded: ranks score unequal row counts
        if not old_is_current(config):  # one epoch of one minibatch: that forward pass is π_old's
            progress = phases.phase("score π_old", n_micro)
            old = _in_parts(
                parts, order, lambda part: score_logprobs(state.model, part, config, pad_id, autocast, progress)
            )
        if samples and config.kl_beta > 0:
            progress = phases.phase("score π_ref", n_micro)
            refs = _in_parts(
                parts,
                order,
                lambda part: reference_logprobs(state.model, state.reference, part, config, pad_id, autocast, progress),
            )
    for s, o, r in zip(samples, old, refs):
        s.old_logprobs, s.ref_logprobs = o, r


def _logprob_mismatch(samples: Sequence[Sample], batch: RolloutBatch) -> list[float]:
    """|trainer − rollout| mean log-prob gap of each scored sample that has rollout log-probs."""
    rollout = {id(s): lp for s, lp in zip(batch.samples, batch.rollout_logprobs)}
    return [
        float((s.old_logprobs - torch.tensor(rollout[id(s)])).abs().mean())
        for s in samples
        if rollout.get(id(s)) and s.old_logprobs is not None
    ]


def _in_parts(
    parts: Sequence[list[Sample]], order: Sequence[int], score: Callable[[list[Sample]], list[torch.Tensor]]
) -> list[torch.Tensor]:
    """``score`` each non-empty part; the log-probs back in sample order (``order``: the parts' indices)."""
    scored = [lp for part in parts if part for lp in score(part)]
    out: list[torch.Tensor] = [torch.empty(0)] * len(order)
    for i, lp in zip(order, scored):
        out[i] = lp
    return out


def _update(state: TrainState, samples: list[Sample]) -> dict[str, float]:
    """Update the policy on ``samples``; NaN metrics when no rank has a sample to train on."""
    if D.all_sum(len(samples)) > 0:  # the same decision on every rank
        config, pad_id = state.config, state.tokenizer.pad_token_id
        # with several minibatches the rows depend on the shuffle: no total to show
        total = micro_batches(samples, config) * config.update_epochs if config.minibatches == 1 else None
        progress = state.progress.phase("update", total)
        return update_policy(
            state.model, state.optimizer, samples, config, pad_id, state.rng, state.autocast, progress, state.zero
        )
    return dict.fromkeys(UPDATE_KEYS, float("nan"))


def _update_metrics(
    config: GRPOConfig, samples: Sequence[Sample], n_distractors: int, mismatch: list[float], update_s: float
) -> dict[str, float]:
    """Curriculum, log-prob mismatch and update throughput (over every rank)."""
    n_samples, n_tokens, gap_sum, n_gaps = D.all_sum_many(
        [len(samples), sum(len(s) for s in samples), sum(mismatch), len(mismatch)]
    )
    return {
        "curriculum/distractors": float(n_distractors),
        "losses/logprob_mismatch": gap_sum / n_gaps if n_gaps else 0.0,
        "perf/update_s": update_s,
        "perf/samples_per_s": n_samples * config.update_epochs / max(update_s, 1e-9),
        "perf/tokens_per_s": n_tokens * config.update_epochs / max(update_s, 1e-9),
        "perf/samples": n_samples,
    }


def _log(state: TrainState, step: int, metrics: dict[str, float], bar: Iterable[int]) -> None:
    """Append the step's metrics to the log (rank 0) and show reward and KL on the bar."""
    if state.logger is None:
        return
    state.logger.log(step, metrics)
    if hasattr(bar, "set_postfix"):
        bar.set_postfix(reward=f"{metrics['reward/mean']:.3f}", kl=f"{metrics['losses/kl']:.4f}")


def _checkpoint(state: TrainState, step: int) -> Path | None:
    """Save every ``save_every`` steps and at the end: the last step, or the budget spent (rank 0 writes; all wait)."""
    config = state.config
    if (step + 1) % config.save_every != 0 and step + 1 != config.num_steps and not _budget_spent(state):
        return None
    return _save(state, step)


def _budget_spent(state: TrainState) -> bool:
    """Whether the run has generated its ``generated_token_budget`` (never, with no budget)."""
    budget = state.config.generated_token_budget
    return budget > 0 and state.generated_tokens_total >= budget


def _count_generated(state: TrainState, metrics: dict[str, float]) -> None:
    """Add the step's generated tokens to the run's total; log the total."""
    # perf/generated_tokens is already summed over ranks: every rank keeps the same total and stops at the same step
    state.generated_tokens_total += metrics["perf/generated_tokens"]
    metrics["perf/generated_tokens_total"] = state.generated_tokens_total


def _stop_for_budget(state: TrainState, step: int) -> bool:
    """Whether the budget ends the run after ``step`` (rank 0 says so)."""
    if not _budget_spent(state):
        return False
    if state.rank == 0:
        spent, budget = int(state.generated_tokens_total), state.config.generated_token_budget
        print(f"generated-token budget reached after step {step}: {spent} of {budget} tokens", flush=True)
    return True


def _save(state: TrainState, step: int) -> Path | None:
    """Checkpoint the state after ``step`` (rank 0 writes; every rank waits; sharded: every rank gathers)."""
    path, model_state, optimizer_state = None, None, None
    if state.zero is not None:  # the files of a replicated run: every layout resumes from them
        model_state, optimizer_state = Z.full_model_state(state.zero), Z.full_optimizer_state(state.zero)
    elif state.sharded:
        model_state, optimizer_state = S.full_model_state(state.model), S.full_optimizer_state(state.optimizer)
    if state.rank == 0:
        counters = {"generated_tokens_total": state.generated_tokens_total}
        path = save_checkpoint(
            state.output_dir,
            step,
            state.model,
            state.tokenizer,
            state.optimizer,
            state.rng,
            state.config.to_dict(),
            counters=counters,
            model_state=model_state,
            optimizer_state=optimizer_state,
        )
    state.accelerator.wait_for_everyone()
    return path


def _interrupted(state: TrainState, done: int, checkpoint: Path | None) -> TrainingInterrupted:
    """Save the last completed step ``done`` unless it is saved already; the exception that says so."""
    if done >= state.start_step and (checkpoint is None or checkpoint.name != f"checkpoint-{done:06d}"):
        checkpoint = _save(state, done)
    if state.logger is not None:
        state.logger.close()
    return TrainingInterrupted(max(done, state.start_step - 1), checkpoint)


def _finish(state: TrainState, checkpoint: Path | None) -> TrainResult:
    """Check the replicas agree (FSDP2, ZeRO-3: there are none), plot the curve, close the log."""
    if state.layout in ("replicate", "zero2"):  # ZeRO-2 keeps whole weights on every rank too
        _check_replicas(state.params)
    rows = state.logger.read() if state.logger is not None else []
    plot = plot_training_curve(rows, state.output_dir / "training_curve.png") if rows else None
    if state.logger is not None:
        state.logger.close()
    return TrainResult(state.output_dir, rows, checkpoint, plot)


# ============================================================================ helpers
@contextlib.contextmanager
def _gathered(state: TrainState, *models: Any) -> Iterator[None]:
    """Whole weights and no collective in forward passes: FSDP2 units gathered, or ZeRO-3's (hooks off)."""
    with S.gathered_weights(*models), Z.gathered_weights(state.zero):
        yield


def _check_replicas(params: list[torch.nn.Parameter]) -> None:
    """Every rank must end with the same weights (gradients are summed by hand)."""
    if D.world()[1] == 1:
        return
    checksum = float(sum(p.detach().double().sum() for p in params))
    sums = D.all_gather_objects([checksum])
    if max(sums) - min(sums) > 1e-6 * max(1.0, abs(sums[0])):
        raise RuntimeError(f"replicas diverged: parameter checksums {sums}")


def _bar(start: int, total: int, enabled: bool) -> Iterable[int]:
    """Steps ``start .. total - 1``, under a tqdm bar that counts from ``start`` of ``total`` when enabled."""
    steps = range(start, total)
    if not enabled:
        return steps
    from tqdm.auto import tqdm

    return tqdm(steps, desc="GRPO", unit="step", initial=start, total=total)


def _close_bar(bar: Iterable[int]) -> None:
    """Close a tqdm bar (so a message after it starts on its own line)."""
    close = getattr(bar, "close", None)
    if close is not None:
        close()


def _rng_snapshot(state: TrainState) -> tuple[Any, Any]:
    """The RNG states a step draws from (task sampling and torch's), to rewind a step cut short."""
    return state.rng.bit_generator.state, torch.get_rng_state()


def _rng_restore(state: TrainState, snapshot: tuple[Any, Any]) -> None:
    """Rewind the RNGs to ``snapshot``."""
    state.rng.bit_generator.state, torch_state = snapshot[0], snapshot[1]
    torch.set_rng_state(torch_state)
