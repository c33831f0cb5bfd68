"""stable-baselines3 adapter: a learnable memory controller over any ``MemoryEnv``.

SB3 rejects text spaces (stable-baselines3 issue #1704), so
:class:`MemoryControlWrapper` exposes the memory decisions of a text episode as a numeric
``Box`` observation and a ``Discrete`` action; a fixed reader writes the answer::

    import agemem_gym
    from agemem_gym.adapters.sb3 import make_vec_control_env
    from stable_baselines3 import PPO

    venv = make_vec_control_env("AgeMem/MemoryProbe-v0", n_envs=4)
    model = PPO("MlpPolicy", venv).learn(20_000)

The wrapper and the baseline controllers need only gymnasium; the SB3 helpers in
:mod:`~agemem_gym.adapters.sb3.training` import stable-baselines3 when called.
"""

from agemem_gym.adapters.sb3.controllers import (
    CONTROLLERS,
    ControlEpisode,
    Controller,
    NoMemoryController,
    RandomController,
    StoreAllController,
    evaluate_controller,
    make_controller,
    summarize_episodes,
)
from agemem_gym.adapters.sb3.features import ACTIONS, FIXED_FEATURES, FeatureExtractor, feature_names
from agemem_gym.adapters.sb3.training import LearningCurve, make_vec_control_env, require_sb3, train_controller
from agemem_gym.adapters.sb3.wrapper import MemoryControlWrapper, Reader, make_control_env

__all__ = [
    "ACTIONS",
    "CONTROLLERS",
    "ControlEpisode",
    "Controller",
    "FIXED_FEATURES",
    "FeatureExtractor",
    "LearningCurve",
    "MemoryControlWrapper",
    "NoMemoryController",
    "RandomController",
    "Reader",
    "StoreAllController",
    "evaluate_controller",
    "feature_names",
    "make_control_env",
    "make_controller",
    "make_vec_control_env",
    "require_sb3",
    "summarize_episodes",
    "train_controller",
]
