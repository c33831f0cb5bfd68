"""stable-baselines3 glue: vectorised control envs and a one-call PPO/DQN trainer.

stable-baselines3 is imported only here, inside the functions, so the wrapper and the
baseline controllers work without it; a missing install raises
:class:`~agemem_gym.error.DependencyNotInstalled` naming the ``[sb3]`` extra.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping
from typing import Any, Literal

from agemem_gym.adapters.sb3.wrapper import make_control_env
from agemem_gym.error import InvalidConfig, missing_dependency

__all__ = ["require_sb3", "make_vec_control_env", "LearningCurve", "train_controller", "ALGO_DEFAULTS"]

Algo = Literal["ppo", "dqn"]

ALGO_DEFAULTS: dict[str, dict[str, Any]] = {
    # short episodes (10–80 decisions): frequent small updates, a little entropy to keep exploring
    "ppo": {"n_steps": 128, "batch_size": 128, "n_epochs": 10, "gamma": 0.99, "ent_coef": 0.01, "learning_rate": 1e-3},
    "dqn": {
        "learning_starts": 1000,
        "buffer_size": 50_000,
        "train_freq": 4,
        "target_update_interval": 1000,
        "exploration_fraction": 0.5,
        "exploration_final_eps": 0.05,
        "learning_rate": 1e-3,
        "batch_size": 64,
    },
}


def require_sb3() -> Any:
    """Import stable-baselines3 or raise the install hint."""
    try:
        import stable_baselines3
    except ImportError as exc:
        raise missing_dependency("stable-baselines3", "sb3") from exc
    return stable_baselines3


def make_vec_control_env(
    env_id: str,
    n_envs: int = 1,
    *,
    seed: int = 0,
    subprocess: bool = False,
    env_kwargs: Mapping[str, Any] | None = None,
    **wrapper_kwargs: Any,
) -> Any:
    """An SB3 ``VecEnv`` of control envs (through SB3's ``make_vec_env``, with ``Monitor``).

    Args:
        env_id: A registered non-interactive id.
        n_envs: Number of copies.
        seed: Copy ``i`` is seeded ``seed + i``.
        subprocess: ``SubprocVecEnv`` (one process per copy) instead of ``DummyVecEnv``.
        env_kwargs: Arguments of the environment.
        **wrapper_kwargs: Arguments of :class:`MemoryControlWrapper`.

    Returns:
        The vectorised env.
    """
    require_sb3()
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv

    if not isinstance(n_envs, int) or n_envs < 1:
        raise InvalidConfig(f"n_envs must be a positive int, got {n_envs!r}")
    # a module-level function under functools.partial pickles for subprocess workers
    factory = functools.partial(make_control_env, env_id, env_kwargs=dict(env_kwargs or {}), **wrapper_kwargs)
    return make_vec_env(factory, n_envs=n_envs, seed=seed, vec_env_cls=SubprocVecEnv if subprocess else DummyVecEnv)


@dataclasses.dataclass
class LearningCurve:
    """Episode returns seen during training: ``timesteps[i]`` is when ``returns[i]`` ended."""

    timesteps: list[int] = dataclasses.field(default_factory=list)
    returns: list[float] = dataclasses.field(default_factory=list)

    def smoothed(self, window: int = 50) -> list[float]:
        """Running mean over the last ``window`` returns."""
        out, total = [], 0.0
        for i, r in enumerate(self.returns):
            total += r
            if i >= window:
                total -= self.returns[i - window]
            out.append(total / min(i + 1, window))
        return out


def _curve_callback(curve: LearningCurve) -> Any:
    from stable_baselines3.common.callbacks import BaseCallback

    class _Record(BaseCallback):
        def _on_step(self) -> bool:
            for info in self.locals.get("infos", ()):
                episode = info.get("episode")
                if episode is not None:
                    curve.timesteps.append(int(self.num_timesteps))
                    curve.returns.append(float(episode["r"]))
            return True

    return _Record()


def train_controller(
    env_id: str,
    *,
    algo: Algo = "ppo",
    total_timesteps: int = 20_000,
    seed: int = 0,
    n_envs: int = 4,
    env_kwargs: Mapping[str, Any] | None = None,
    wrapper_kwargs: Mapping[str, Any] | None = None,
    algo_kwargs: Mapping[str, Any] | None = None,
    net_arch: tuple[int, ...] = (64, 64),
    torch_threads: int | None = 1,
) -> tuple[Any, LearningCurve]:
    """Train a PPO or DQN memory controller on ``env_id``.

    Args:
        env_id: A registered non-interactive id.
        algo: ``"ppo"`` or ``"dqn"``.
        total_timesteps: Environment steps (decisions) to train for.
        seed: Seeds the model and the env copies.
        n_envs: Env copies (``DummyVecEnv``; DQN uses one).
        env_kwargs: Arguments of the environment.
        wrapper_kwargs: Arguments of :class:`MemoryControlWrapper` (e.g. ``tasks`` for a
            training split).
        algo_kwargs: Overrides of :data:`ALGO_DEFAULTS`.
        net_arch: Hidden layers of the MLP policy.
        torch_threads: ``torch.set_num_threads`` (1 keeps small MLPs fast on shared cores);
            ``None`` leaves it alone.

    Returns:
        The trained model and its learning curve.
    """
    require_sb3()
    import torch
    from stable_baselines3 import DQN, PPO

    if algo not in ALGO_DEFAULTS:
        raise InvalidConfig(f"algo must be one of {sorted(ALGO_DEFAULTS)}, got {algo!r}")
    if torch_threads is not None:
        torch.set_num_threads(int(torch_threads))
    venv = make_vec_control_env(
        env_id, 1 if algo == "dqn" else n_envs, seed=seed, env_kwargs=env_kwargs, **dict(wrapper_kwargs or {})
    )
    kwargs = {**ALGO_DEFAULTS[algo], **dict(algo_kwargs or {})}
    cls = PPO if algo == "ppo" else DQN
    model = cls("MlpPolicy", venv, seed=seed, policy_kwargs={"net_arch": list(net_arch)}, device="cpu", **kwargs)
    curve = LearningCurve()
    model.learn(total_timesteps=int(total_timesteps), callback=_curve_callback(curve))
    venv.close()
    return model, curve
