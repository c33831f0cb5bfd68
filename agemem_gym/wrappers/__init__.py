"""Wrappers around agemem-gym environments.

* :class:`~agemem_gym.wrappers.record.RecordEpisode`: write each episode as JSON Lines
  (turns, tool calls and results, LTM diffs, token counts, scores); read it back with
  :func:`~agemem_gym.wrappers.episode.read_episode` and view it with ``agemem view``.
* :class:`~agemem_gym.wrappers.stage_tools.ToolCallsByStage`: count tool calls per stage in
  ``info["tool_calls_by_stage"]`` (which tools a policy uses where).
* :class:`~agemem_gym.wrappers.wipe.WipeMemoryBeforeStage3`: empty the long-term memory as
  Stage 3 begins (the LTM-wiped ablation: a score that comes from memory must fall).
"""

from agemem_gym.wrappers.episode import Episode, read_episode
from agemem_gym.wrappers.record import RecordEpisode, maybe_record, recording_env_fns
from agemem_gym.wrappers.stage_tools import ToolCallsByStage
from agemem_gym.wrappers.wipe import WipeMemoryBeforeStage3

__all__ = [
    "Episode",
    "RecordEpisode",
    "ToolCallsByStage",
    "WipeMemoryBeforeStage3",
    "maybe_record",
    "read_episode",
    "recording_env_fns",
]
