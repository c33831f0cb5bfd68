"""``GRPOConfig``: every knob of the step-wise GRPO trainer, with the ``paper`` and ``cpu-smoke`` presets.

Presets:

* ``paper``: the paper's and the released code's recipe — K = 8 rollouts per task, 16 tasks
  per step, β = 0.1, PPO clip 0.2, LoRA r = 32 / α = 32, lr 1e-5, temperature 0.6, 8,192
  context / 2,048 response tokens, 100 steps, SmolLM2-135M-Instruct offline by default
  (pass ``model=`` for Qwen2.5-7B-Instruct or another local folder).
* ``small-model``: SmolLM2-135M-Instruct with grammar-constrained turns (a 135M model
  otherwise answers in prose and never produces a tool call), LoRA, short episodes.
* ``learning-probe``: the learning benchmark's recipe (``benchmarks/learning.py``):
  SmolLM2-135M-Instruct, LoRA, grammar-constrained turns on ``AgeMem/Probe-Recall-v0`` tasks
  0-47 (eight colours, so guessing scores 1/8; tasks 48-63 are the held-out panel).
* ``cpu-smoke``: a tiny random Llama over a ~60-token word-level tokenizer on
  ``AgeMem/Probe-Recall-v0``; finishes in a few minutes on 2 CPU cores, exercises every part
  (rollouts, packing, KL, checkpoints, logs, plot) and its reward visibly rises.

A TOML file may start from a preset (``preset = "paper"``) and override fields; env
kwargs go in an ``[env_kwargs]`` table.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from agemem_gym.config import check_field_types
from agemem_gym.error import InvalidConfig, UnknownName, unknown_name

try:  # Python 3.11+
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    import tomli as tomllib

__all__ = ["ENV_BACKENDS", "GRPOConfig", "PRESETS", "load_config"]

ENV_BACKENDS = ("sync", "async", "ray")
"""The values of :attr:`GRPOConfig.env_backend` (:func:`agemem_gym.vector.make_slot_envs` modes)."""


@dataclasses.dataclass(frozen=True)
class GRPOConfig:
    """Step-wise GRPO settings (see the module docstring for the presets)."""

    model: str = "smollm2"
    """``"smollm2"``, ``"tiny"`` or a local Hugging Face folder."""
    env_id: str = "AgeMem/HotpotQA-v0"
    """Environment to train on."""
    env_kwargs: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    """Passed to ``gym.make`` (the tokenizer is added so token budgets are exact)."""
    tasks_per_step: int = 16
    """B: tasks (groups) per training step, summed over processes."""
    group_size: int = 8
    """K: rollouts per task."""
    temperature: float = 0.6
    """Rollout sampling temperature; log-probs are computed at the same temperature."""
    max_new_tokens: int = 2048
    """Longest generated turn."""
    constrained: bool = False
    """Sample turns under the turn grammar (llguidance); the loss uses the same masks."""
    generation_batch_size: int = 16
    """Turns generated per ``generate`` call."""
    async_envs: bool = False
    """Alias of ``env_backend = "async"`` (kept for existing configs)."""
    env_backend: str = "sync"
    """Where the rollout envs step: ``"sync"`` (in the trainer's process), ``"async"`` (a
    subprocess per env, ``AsyncVectorEnv``) or ``"ray"`` (a Ray actor per env, for expensive
    engines such as ScienceWorld's JVM or ALFWorld, or envs spread over a Ray cluster: set
    ``RAY_ADDRESS``; needs the ``[ray]`` extra)."""
    num_steps: int = 100
    """Training steps (collect → advantages → update)."""
    generated_token_budget: int = 0
    """Stop after the step at which the run's generated tokens (``perf/generated_tokens`` summed
    over steps and processes, logged as ``perf/generated_tokens_total``) reach this many, with a
    checkpoint as at a normal end; ``num_steps`` still caps the run. 0 turns it off. Credit modes
    of different cost per step are compared at the same budget (``benchmarks/learning_credit.py``)."""
    learning_rate: float = 1e-5
    """AdamW learning rate (0: a control run whose weights never change)."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    update_epochs: int = 1
    """μ: passes over each step's samples."""
    minibatches: int = 1
    """Optimizer steps per epoch (the samples are split evenly)."""
    row_tokens: int = 10240
    """Capacity of a packed training row in positions (raised to the longest sample when needed).
    Under ``packing = "prefix-tree"`` a prefix its samples share counts once, and a sample's
    attention costs O(its length × the new tokens it adds), whatever the row's size; under
    ``"block-mask"`` attention costs O(row²): rows about one long sample in size are the sweet
    spot there (the paper's 8,192 + 2,048)."""
    rows_per_micro_batch: int = 1
    """Packed rows per forward pass."""
    packing: Literal["prefix-tree", "block-mask"] = "prefix-tree"
    """How samples share a row. ``"prefix-tree"``: the samples are sorted by their tokens and
    every token prefix that samples in one row share (the system prompt, an episode's history)
    is computed once, its keys and values read by each sample continuing it; attention runs
    segment by segment, never as an ``L × L`` mask (:mod:`~agemem_gym.adapters.grpo.prefix`).
    ``"block-mask"``: the samples back to back under a dense block-diagonal mask (the former
    layout). Both give the same log-probs and gradients to float rounding."""
    clip: float | None = 0.2
    """PPO clip ε (``None``, or ``"none"`` in TOML and on the command line: the paper's unclipped ratio)."""
    clip_high: float | None = None
    """Upper clip when it differs from ``clip`` (``"none"`` is read as ``None``)."""
    kl_beta: float = 0.1
    """β of the KL penalty to the frozen reference policy (0 turns it off)."""
    kl_estimator: Literal["k1", "k2", "k3"] = "k3"
    """KL estimator. As a loss, k3's gradient follows ``KL(π_ref ‖ π_θ)`` and k2's
    ``KL(π_θ ‖ π_ref)``; k1's is zero in expectation (no pull to the reference, so it warns).
    See :func:`~agemem_gym.adapters.grpo.losses.kl_penalty`."""
    loss_aggregation: Literal["token-mean", "sequence-mean"] = "token-mean"
    """How per-token losses are averaged."""
    adv_eps: float = 1e-6
    """ε of the group-advantage denominator."""
    advantage: Literal["std-floor", "paper", "mean-only"] = "std-floor"
    """How a group's rewards become advantages. ``"std-floor"`` (default):
    ``(r − mean) / (max(std, adv_std_floor) + ε)``, so a group tied on everything but noise
    (a few context tokens of compression) gets small advantages, not ±1. ``"paper"``: Eq. 5,
    ``(r − mean) / (std + ε)``. ``"mean-only"``: ``r − mean`` ("Dr. GRPO", no std division)."""
    adv_std_floor: float = 0.02
    """The std floor of ``advantage="std-floor"``: the reward's resolution. One binary
    context or memory term moves the default reward by 1/12 ≈ 0.083, which in a group of 8
    with one rollout apart has a std of 0.029, above the floor; one context token moves it by
    1e-5, far below."""
    credit: Literal["trajectory", "memory-state"] = "trajectory"
    """How a step's advantage is computed. ``"trajectory"``: the paper's, every step of a
    trajectory gets its group-normalised return. ``"memory-state"``: each rollout stops at the
    fork (``fork_stage``), its env is snapshotted and ``fork_continuations`` continuations are
    played from the snapshot; Stage-1 steps are credited with the value of the memory state
    they built, continuation steps within the continuations of the same memory state
    (:mod:`~agemem_gym.adapters.grpo.credit`). It costs about ``1 + (M − 1)·f`` times the
    generated tokens (``f``: the post-fork share; logged as ``perf/generated_tokens``)."""
    fork_stage: int = 2
    """Memory-state credit forks right before the first turn of this stage (2 or 3)."""
    fork_continuations: int = 2
    """M: continuations played from each memory state (memory-state credit)."""
    credit_weight: float = 0.5
    """w in [0, 1]: memory-state credit's share, ``(1 − w)·A_traj + w·A_memory-state``."""
    drop_zero_advantage: bool = False
    """Leave zero-advantage samples (groups whose K rewards are all equal) out of the update.
    Off by default: they carry no policy gradient, but they do carry the KL-to-reference term
    of the objective (and its share of the token mean). On, it saves their forward passes."""
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    """Forward passes of scoring (π_old, π_ref) and update alike: ``"auto"`` is bf16 autocast on
    a GPU that supports it and float32 elsewhere; ``"bf16"`` forces bf16 autocast (on CPU too,
    which is how the GPU path is tested); ``"fp32"`` turns autocast off."""
    max_grad_norm: float = 1.0
    """Gradient clipping (0 turns it off)."""
    lora_rank: int = 32
    """LoRA rank (0: full fine-tuning)."""
    lora_alpha: int = 32
    """LoRA α."""
    stage2_warmup_steps: int = 0
    """Curriculum: Stage 2 off for the first N steps."""
    distractor_ramp_steps: int = 0
    """Curriculum: then ramp the distractor count from 1 to the env's value over N steps."""
    seed: int = 0
    """Seeds model init (tiny), task sampling, rollouts and shuffling."""
    output_dir: str = "runs/grpo"
    """Logs, checkpoints and the plot go here."""
    save_every: int = 20
    """Checkpoint every N steps (and at the end)."""
    resume: bool = True
    """Continue the run in ``output_dir`` (from its newest checkpoint) when it holds one with the same
    settings; a run with other settings is refused (see :mod:`~agemem_gym.adapters.grpo.run_folder`)."""
    overwrite: bool = False
    """Start afresh (whatever ``resume`` says): remove ``output_dir``'s run files and ``record_dir``'s recordings."""
    tensorboard: bool = True
    """Write TensorBoard events next to the CSV log."""
    record_dir: str | None = None
    """Record rollout episodes (JSON Lines, ``agemem view``) into this folder."""
    record_every: int = 10
    """Record the rollouts of every N-th step."""
    torch_threads: int = 0
    """CPU threads for torch. 0: the cores divided by the processes sharing them, this launch's
    (``LOCAL_WORLD_SIZE``) times the jobs the ``AGEMEM_JOBS`` environment variable names, and at
    most the cores the load average leaves free at start-up
    (:func:`~agemem_gym.adapters.grpo.launch.default_threads`). Oversubscribed OpenMP threads can
    slow each op down 4-20x: set ``AGEMEM_JOBS`` (or this) when several jobs share the cores."""
    logprob_chunk_tokens: int = 256
    """Response positions projected to the vocabulary at a time when scoring and updating: the
    peak holds a ``chunk × vocab`` float32 block (50 MB at SmolLM2's 49k vocabulary), never one
    per response token. The log-probs and gradients do not depend on it."""
    gradient_checkpointing: bool = True
    """Recompute each decoder layer's activations in the backward pass instead of keeping them
    (``use_reentrant=False``). A 4,096-token row of SmolLM2-135M keeps about 5 GB of float32
    activations otherwise; checkpointed, about 0.3 GB, for one extra forward pass per update.
    The log-probs and gradients do not depend on it."""
    malloc_mmap_threshold: int = 131072
    """On Linux with glibc, tensors of at least this many bytes are allocated with ``mmap`` and
    given back to the system when freed (0 keeps glibc's default). By default glibc raises
    this threshold up to 32 MB as large blocks are freed, and then keeps the freed blocks: a
    SmolLM2-135M forward + backward over a 1,500-token row peaked at 2.8 GB of RSS that way
    and at 1.4 GB with a fixed 128 KiB threshold. It is set for the whole process."""
    sharding: str = "auto"
    """Parameter layout over processes: ``"replicate"`` (a full copy per process, gradients summed
    once per optimizer step), ``"fsdp2"`` (parameters, gradients and optimizer state sharded with
    ``torch.distributed.fsdp.fully_shard``, one unit per decoder layer; rollouts and scoring run on
    weights gathered once per phase, and update micro-batches are padded to the same count on
    every rank), ``"zero2"`` / ``"zero3"`` (DeepSpeed ZeRO stage 2: gradients and optimizer state
    partitioned; stage 3: weights too, gathered whole for each rollout and scoring phase and each
    update micro-batch; DeepSpeed's engine runs backward and the step, with the same lockstep
    micro-batches; needs ``pip install "agemem-gym[deepspeed]"``) or ``"auto"``
    (FSDP2 under an accelerate FSDP launch, ZeRO under an accelerate DeepSpeed launch of stage 2
    or 3, replicas otherwise). On CPU, where accelerate has no FSDP, ``"fsdp2"`` under
    ``torchrun`` shards over gloo (accelerate's DeepSpeed launch does run on CPU). Checkpoints are
    the same in every layout, so a run may resume with another."""

    def __post_init__(self) -> None:
        # TOML has no null and the CLI passes text: "none" selects the unclipped objective
        object.__setattr__(self, "clip", _clip_value("clip", self.clip))
        object.__setattr__(self, "clip_high", _clip_value("clip_high", self.clip_high))
        check_field_types(self)  # before the range checks: "three" >= 1 would be a TypeError
        self._check_ranges()

    def _check_ranges(self) -> None:
        positive = (
            "tasks_per_step",
            "group_size",
            "max_new_tokens",
            "generation_batch_size",
            "num_steps",
            "update_epochs",
            "minibatches",
            "row_tokens",
            "rows_per_micro_batch",
            "save_every",
        )
        for name in positive:
            if int(getattr(self, name)) < 1:
                raise InvalidConfig(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.seed < 0:  # numpy's generators take no negative seed
            raise InvalidConfig(f"seed must be >= 0, got {self.seed}")
        if self.group_size < 2:
            raise InvalidConfig("group_size must be >= 2: GRPO normalises rewards within a group")
        if self.temperature <= 0:
            raise InvalidConfig(f"temperature must be > 0, got {self.temperature}")
        if self.clip is not None and not 0 < self.clip < 1:
            raise InvalidConfig(f"clip must be in (0, 1) or None, got {self.clip}")
        if self.clip_high is not None and not self.clip_high > 0:
            raise InvalidConfig(f"clip_high must be > 0 or None, got {self.clip_high}")
        if self.sharding not in ("auto", "replicate", "fsdp2", "zero2", "zero3"):
            raise InvalidConfig(f"sharding must be auto, replicate, fsdp2, zero2 or zero3, got {self.sharding!r}")
        if self.precision not in ("auto", "fp32", "bf16"):
            raise InvalidConfig(f"precision must be auto, fp32 or bf16, got {self.precision!r}")
        if self.kl_estimator not in ("k1", "k2", "k3"):
            raise InvalidConfig(f"kl_estimator must be k1, k2 or k3, got {self.kl_estimator!r}")
        if self.loss_aggregation not in ("token-mean", "sequence-mean"):
            raise InvalidConfig(f"loss_aggregation must be token-mean or sequence-mean, got {self.loss_aggregation!r}")
        if self.lora_rank < 0:
            raise InvalidConfig(f"lora_rank must be >= 0, got {self.lora_rank}")
        if self.generated_token_budget < 0:
            budget = self.generated_token_budget
            raise InvalidConfig(f"generated_token_budget must be >= 0 (0: no budget), got {budget}")
        self._check_packing()
        self._check_env_backend()
        self._check_rates()
        self._check_credit()
        self._check_advantage()

    def _check_advantage(self) -> None:
        if self.advantage not in ("std-floor", "paper", "mean-only"):
            raise InvalidConfig(f"advantage must be std-floor, paper or mean-only, got {self.advantage!r}")
        if self.adv_std_floor < 0 or self.adv_eps < 0:
            raise InvalidConfig(f"adv_std_floor and adv_eps must be >= 0, got {self.adv_std_floor}, {self.adv_eps}")
        if self.kl_estimator == "k1" and self.kl_beta > 0:
            warnings.warn(
                "kl_estimator='k1' gives the KL penalty a zero gradient in expectation: it adds noise, "
                "not a pull toward the reference policy; use 'k3' (default) or 'k2'",
                UserWarning,
                stacklevel=3,
            )

    def _check_rates(self) -> None:
        for name in ("kl_beta", "learning_rate"):  # `not >=`: NaN is refused too
            if not getattr(self, name) >= 0:
                raise InvalidConfig(f"{name} must be >= 0, got {getattr(self, name)}")

    def _check_packing(self) -> None:
        if self.packing not in ("prefix-tree", "block-mask"):
            raise InvalidConfig(f"packing must be prefix-tree or block-mask, got {self.packing!r}")

    def _check_credit(self) -> None:
        if self.credit not in ("trajectory", "memory-state"):
            raise InvalidConfig(f"credit must be trajectory or memory-state, got {self.credit!r}")
        if self.fork_stage not in (2, 3):
            raise InvalidConfig(
                f"fork_stage must be 2 or 3 (the fork is before that stage's first turn), got {self.fork_stage}"
            )
        if self.fork_continuations < 2:
            raise InvalidConfig(
                "fork_continuations must be >= 2 (continuations are compared within a memory state), "
                f"got {self.fork_continuations}"
            )
        if not 0.0 <= self.credit_weight <= 1.0:
            raise InvalidConfig(f"credit_weight must be in [0, 1], got {self.credit_weight}")
        if self.credit == "memory-state" and self.rollout_env_backend == "ray":
            # a Ray worker lost mid-continuation would be replayed from a fresh reset, not from the snapshot
            raise InvalidConfig("credit = memory-state runs on the sync or async env backend, not ray")

    def _check_env_backend(self) -> None:
        if self.env_backend not in ENV_BACKENDS:
            raise InvalidConfig(f"env_backend must be one of {', '.join(ENV_BACKENDS)}, got {self.env_backend!r}")
        if self.async_envs and self.env_backend not in ("sync", "async"):
            raise InvalidConfig(
                f"async_envs = true asks for the async env backend, but env_backend = {self.env_backend!r}"
            )

    @property
    def rollout_env_backend(self) -> str:
        """The env backend in effect: ``env_backend``, or ``"async"`` when ``async_envs`` asks for it."""
        return "async" if self.async_envs else self.env_backend

    def replace(self, **changes: Any) -> GRPOConfig:
        """A copy with ``changes`` (validated)."""
        fields = {f.name for f in dataclasses.fields(self)}
        for name in changes:
            if name not in fields:
                raise unknown_name("GRPOConfig field", name, fields)
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict of every field."""
        data = dataclasses.asdict(self)
        data["env_kwargs"] = dict(self.env_kwargs)
        return data


def _clip_value(name: str, value: Any) -> float | None:
    """``None`` (or the text ``"none"``) or a number; anything else is a config error."""
    if value is None or (isinstance(value, str) and value.strip().lower() in ("none", "null")):
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise InvalidConfig(f"{name} must be a number or 'none', got {value!r}")
    try:
        return float(value)
    except ValueError:
        raise InvalidConfig(f"{name} must be a number or 'none', got {value!r}") from None


def _paper() -> GRPOConfig:
    return GRPOConfig()


def _cpu_smoke() -> GRPOConfig:
    return GRPOConfig(
        model="tiny-vocab",
        env_id="AgeMem/Probe-Recall-v0",
        env_kwargs={"num_tasks": 2, "max_rounds": 3, "tools_in_system_prompt": False},
        tasks_per_step=2,
        group_size=8,
        temperature=1.0,
        max_new_tokens=16,
        generation_batch_size=16,
        num_steps=12,
        learning_rate=3e-3,
        row_tokens=512,
        rows_per_micro_batch=4,
        lora_rank=0,
        kl_beta=0.01,
        output_dir="runs/cpu-smoke",
        save_every=6,
        torch_threads=1,
    )


def _small_model() -> GRPOConfig:
    return GRPOConfig(
        model="smollm2",
        env_kwargs={"num_distractors": 2, "max_rounds": 3},
        tasks_per_step=4,
        group_size=4,
        temperature=0.8,
        max_new_tokens=256,
        generation_batch_size=16,
        constrained=True,
        num_steps=50,
        learning_rate=5e-5,
        lora_rank=16,
        lora_alpha=32,
        kl_beta=0.05,
        row_tokens=4096,
        output_dir="runs/small-model",
        save_every=10,
    )


def _learning_probe() -> GRPOConfig:
    # Two rounds per stage are the fewest that allow store-then-anything in Stage 1 and
    # retrieve-then-answer in Stage 3. One minibatch and two epochs: two optimizer steps per step.
    return GRPOConfig(
        model="smollm2",
        env_id="AgeMem/Probe-Recall-v0",
        env_kwargs={"num_tasks": 48, "max_rounds": 2},
        tasks_per_step=4,
        group_size=8,
        temperature=1.0,
        max_new_tokens=96,
        generation_batch_size=32,
        constrained=True,
        num_steps=40,
        learning_rate=1e-4,
        update_epochs=2,
        lora_rank=16,
        lora_alpha=32,
        kl_beta=0.01,
        row_tokens=4096,
        rows_per_micro_batch=2,
        output_dir="runs/learning-probe",
        save_every=5,
    )


PRESETS = {
    "paper": _paper,
    "cpu-smoke": _cpu_smoke,
    "small-model": _small_model,
    "learning-probe": _learning_probe,
}


def load_config(spec: str | Path, **overrides: Any) -> GRPOConfig:
    """A preset name or a TOML file, with overrides.

    Args:
        spec: ``"paper"``, ``"cpu-smoke"`` or a path to a ``.toml`` file (optionally with
            ``preset = "..."`` to start from).
        **overrides: Fields to change. ``None`` is a value like any other (``clip=None``
            selects the unclipped objective): leave a field out to keep it.

    Returns:
        The config.
    """
    changes = dict(overrides)
    name = str(spec)
    if name in PRESETS:
        return PRESETS[name]().replace(**changes)
    path = Path(spec)
    if not path.is_file():
        raise unknown_name("training config (preset or TOML file)", name, PRESETS)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise InvalidConfig(f"{path}: invalid TOML ({exc})") from exc
    preset = data.pop("preset", "paper")
    if not isinstance(preset, str) or preset not in PRESETS:
        raise unknown_name("preset", str(preset), PRESETS)
    base = PRESETS[preset]()
    if isinstance(data.get("env_kwargs"), Mapping):  # any other type is named by the field check
        data["env_kwargs"] = {**base.env_kwargs, **data["env_kwargs"]}
    try:
        config = base.replace(**data)
    except (InvalidConfig, UnknownName) as exc:  # name the file: the field alone may not say which
        raise type(exc)(f"{path}: {exc}") from exc
    return config.replace(**changes)
