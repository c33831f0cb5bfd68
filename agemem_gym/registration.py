"""Every ``AgeMem/*`` id in one table, registered with Gymnasium on import of ``agemem_gym``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import gymnasium as gym

__all__ = ["ENV_SPECS", "check_env_arguments", "register_envs", "env_ids"]


class _Spec(NamedTuple):
    id: str
    entry_point: str
    kwargs: dict[str, Any]
    nondeterministic: bool = False


ENV_SPECS: tuple[_Spec, ...] = (
    _Spec("AgeMem/HotpotQA-v0", "agemem_gym.envs.hotpotqa:HotpotQAEnv", {}),
    _Spec("AgeMem/HotpotQA-Single-v0", "agemem_gym.envs.hotpotqa:HotpotQAEnv", {"stage1_mode": "single"}),
    _Spec("AgeMem/HotpotQA-NoDistractors-v0", "agemem_gym.envs.hotpotqa:HotpotQAEnv", {"num_distractors": 0}),
    _Spec("AgeMem/Probe-Recall-v0", "agemem_gym.envs.probe:ProbeRecallEnv", {}),
    _Spec("AgeMem/MemoryProbe-v0", "agemem_gym.envs.memory_probe:MemoryProbeEnv", {"num_distractors": 2}),
    _Spec("AgeMem/BabyAI-v0", "agemem_gym.envs.babyai:BabyAIEnv", {}),
    _Spec("AgeMem/BabyAI-GoToLocal-v0", "agemem_gym.envs.babyai:BabyAIEnv", {"level": "GoToLocal"}),
    _Spec("AgeMem/BabyAI-PickupLoc-v0", "agemem_gym.envs.babyai:BabyAIEnv", {"level": "PickupLoc"}),
    _Spec("AgeMem/BabyAI-PutNextLocal-v0", "agemem_gym.envs.babyai:BabyAIEnv", {"level": "PutNextLocal"}),
    _Spec(
        "AgeMem/BabyAI-BossLevel-v0", "agemem_gym.envs.babyai:BabyAIEnv", {"level": "BossLevel", "max_world_steps": 128}
    ),
    _Spec("AgeMem/PDDL-v0", "agemem_gym.envs.pddl:PDDLEnv", {}),
    _Spec("AgeMem/FactUpdate-v0", "agemem_gym.envs.synthetic:FactUpdateEnv", {}),
    _Spec("AgeMem/LongRecall-v0", "agemem_gym.envs.synthetic:LongRecallEnv", {}),
    _Spec("AgeMem/LoCoMo-v0", "agemem_gym.envs.locomo:LoCoMoEnv", {}),
    _Spec("AgeMem/LongMemEval-v0", "agemem_gym.envs.longmemeval:LongMemEvalEnv", {}),
    _Spec("AgeMem/SciWorld-v0", "agemem_gym.envs.sciworld:SciWorldEnv", {}),
    _Spec("AgeMem/ALFWorld-v0", "agemem_gym.envs.alfworld:ALFWorldEnv", {}),
)


def register_envs() -> None:
    """Register every id (idempotent). Episodes end by themselves, so no ``TimeLimit`` is set."""
    _guard_passive_checker()
    for spec in ENV_SPECS:
        if spec.id in gym.registry:
            continue
        gym.register(
            id=spec.id,
            entry_point=spec.entry_point,
            kwargs=dict(spec.kwargs),
            nondeterministic=spec.nondeterministic,
            disable_env_checker=False,
        )


def env_ids() -> list[str]:
    """All registered agemem-gym ids."""
    return [s.id for s in ENV_SPECS]


def check_env_arguments(env_id: str, kwargs: Mapping[str, Any]) -> None:
    """Check ``gym.make(env_id, **kwargs)``'s arguments against the env constructor's type hints.

    The env's constructor checks them too, but ``gym.make`` reads ``render_mode`` before it
    calls the constructor (``render_mode=5`` fails inside Gymnasium), and a caller may want to
    check before anything heavy loads.

    Args:
        env_id: A registered id (an unregistered one is left to ``gym.make``).
        kwargs: The arguments.

    Raises:
        InvalidConfig: A value that does not fit (the message names the argument, the type
            it takes and an example).
    """
    import importlib

    from agemem_gym.typecheck import check_arguments

    spec = gym.registry.get(env_id)
    if spec is None or not isinstance(spec.entry_point, str):
        return
    module, _, attr = spec.entry_point.partition(":")
    try:
        cls = getattr(importlib.import_module(module), attr)
    except ImportError:  # an extra that is not installed: gym.make names the pip command
        return
    check_arguments(cls, kwargs, env_id)


def _guard_passive_checker() -> None:
    """Work around a Gymnasium bug: after a failed first ``reset``, the first ``step`` crashes.

    ``gymnasium.wrappers.PassiveEnvChecker.reset`` (Gymnasium 1.x) sets ``checked_reset = True``
    *before* it calls the env's ``reset`` through ``env_reset_passive_checker``, and stores the
    returned ``(obs, info)`` in ``_previous_data`` only on that checked path. When that first
    reset raises (a bad ``options={"task_id": ...}`` raises ``UnknownName``), ``_previous_data``
    stays ``None``; the next reset takes the unchecked path, which never stores it; and the
    first ``step`` calls ``env_data_reuse_passive_checker(None, ...)``, which unpacks ``None``:
    ``TypeError: cannot unpack non-iterable NoneType object``.

    The guard re-arms the first-reset check when that reset raised, so the next reset runs it
    and stores its data. It acts only on agemem-gym's envs (every other env keeps Gymnasium's
    behaviour) and is harmless once Gymnasium sets the flag after a successful reset.
    """
    from gymnasium.wrappers.common import PassiveEnvChecker

    original = PassiveEnvChecker.reset
    if getattr(original, "_agemem_guard", False):
        return

    def reset(self: PassiveEnvChecker, *, seed: int | None = None, options: dict[str, Any] | None = None) -> Any:
        first = self.checked_reset is False
        try:
            return original(self, seed=seed, options=options)
        except BaseException:
            if first and type(self.env.unwrapped).__module__.startswith("agemem_gym."):
                self.checked_reset = False
            raise

    reset._agemem_guard = True  # type: ignore[attr-defined]  # marks the guard: installed once per process
    PassiveEnvChecker.reset = reset  # type: ignore[method-assign]  # the workaround itself
