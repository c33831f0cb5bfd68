"""Every ``AgeMem/*`` id in one table, registered with Gymnasium on import of ``agemem_gym``."""

from __future__ import annotations

from typing import Any, NamedTuple

import gymnasium as gym

__all__ = ["ENV_SPECS", "register_envs", "env_ids"]


class _Spec(NamedTuple):
    id: str
    entry_point: str
    kwargs: dict[str, Any]
    nondeterministic: bool = False


ENV_SPECS: tuple[_Spec, ...] = (
    _Spec("AgeMem/HotpotQA-v0", "agemem_gym.envs.hotpotqa:HotpotQAEnv", {}),
    _Spec("AgeMem/HotpotQA-Single-v0", "agemem_gym.envs.hotpotqa:HotpotQAEnv", {"stage1_mode": "single"}),
    _Spec("AgeMem/HotpotQA-NoDistractors-v0", "agemem_gym.envs.hotpotqa:HotpotQAEnv", {"num_distractors": 0}),
)


def register_envs() -> None:
    """Register every id (idempotent). Episodes end by themselves, so no ``TimeLimit`` is set."""
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
