"""PettingZoo adapter: multi-agent tasks whose agents share one long-term memory.

No multi-agent suite has a shared *learned* memory; here the shared
:class:`~agemem_gym.memory.LongTermMemory` is the only channel between agents, so its
quality is what the team is scored on::

    from agemem_gym.adapters.pettingzoo import make_parallel

    env = make_parallel("TeamHotpotQA-v0")          # reader_0 + answerer_0
    observations, infos = env.reset(seed=0)
    while env.agents:
        actions = {agent: my_policy(observations[agent]) for agent in env.agents}
        observations, rewards, terminations, truncations, infos = env.step(actions)

Variants (:data:`VARIANTS`): ``TeamHotpotQA-v0`` (a reader that sees the paragraphs, an
answerer that sees only the question), ``TeamHotpotQA-3Readers-v0`` (the paragraphs split
over three readers: four agents), ``TeamHotpotQA-Saboteur-v0`` (plus an agent that writes
misleading memories, so UPDATE/DELETE and trust matter), and ``TeamProbe-v0`` /
``TeamProbe-Saboteur-v0`` over the small ``AgeMem/MemoryProbe-v0`` task, where the fixed
extractive reader is nearly perfect, so the scores move with the memory alone.
:func:`make_aec` gives the AEC
form through PettingZoo's ``parallel_to_aec``.

Importing this module without PettingZoo raises
:class:`~agemem_gym.error.DependencyNotInstalled` naming the ``[pettingzoo]`` extra.
"""

from __future__ import annotations

from typing import Any

from agemem_gym.error import missing_dependency, unknown_name

try:
    import pettingzoo  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised by a test that hides the package
    raise missing_dependency("pettingzoo", "pettingzoo") from exc

from agemem_gym.adapters.pettingzoo.roles import ROLE_NOTES, SABOTEUR_TOOLS  # noqa: E402
from agemem_gym.adapters.pettingzoo.scoring import PLANTED, AgentRecord, TeamOutcome, score_team  # noqa: E402
from agemem_gym.adapters.pettingzoo.team import TeamMemoryEnv  # noqa: E402

__all__ = [
    "AgentRecord",
    "PLANTED",
    "ROLE_NOTES",
    "SABOTEUR_TOOLS",
    "TeamMemoryEnv",
    "TeamOutcome",
    "VARIANTS",
    "make_aec",
    "make_parallel",
    "score_team",
]

VARIANTS: dict[str, dict[str, Any]] = {
    "TeamHotpotQA-v0": {"task_env": "AgeMem/HotpotQA-v0", "num_readers": 1},
    "TeamHotpotQA-3Readers-v0": {"task_env": "AgeMem/HotpotQA-v0", "num_readers": 3},
    "TeamHotpotQA-Saboteur-v0": {"task_env": "AgeMem/HotpotQA-v0", "num_readers": 1, "num_saboteurs": 1},
    "TeamProbe-v0": {"task_env": "AgeMem/MemoryProbe-v0", "num_readers": 1},
    "TeamProbe-Saboteur-v0": {"task_env": "AgeMem/MemoryProbe-v0", "num_readers": 1, "num_saboteurs": 1},
}
"""Named team tasks: constructor arguments of :class:`TeamMemoryEnv`."""


def make_parallel(name: str = "TeamHotpotQA-v0", **kwargs: Any) -> TeamMemoryEnv:
    """A team env by variant name; ``kwargs`` override the variant's arguments.

    Args:
        name: One of :data:`VARIANTS`.
        **kwargs: :class:`TeamMemoryEnv` arguments (and ``gym.make`` arguments of the task).

    Returns:
        The ``ParallelEnv``.
    """
    if name not in VARIANTS:
        raise unknown_name("team variant", name, VARIANTS)
    return TeamMemoryEnv(**{**VARIANTS[name], **kwargs})


def make_aec(name: str = "TeamHotpotQA-v0", **kwargs: Any) -> Any:
    """The AEC form of :func:`make_parallel` (PettingZoo's ``parallel_to_aec``).

    Observations stay text, so PettingZoo's AEC ``api_test`` (which expects NumPy
    observations) does not apply; the AEC form is covered by this project's own checks
    (agent iteration, ``last()``, dead-agent steps, agreement with the parallel form).
    """
    from pettingzoo.utils.conversions import parallel_to_aec

    return parallel_to_aec(make_parallel(name, **kwargs))
