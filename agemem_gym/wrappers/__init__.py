"""Wrappers around agemem-gym environments.

* :class:`~agemem_gym.wrappers.record.RecordEpisode`: write each episode as JSON Lines
  (turns, tool calls and results, LTM diffs, token counts, scores); read it back with
  :func:`~agemem_gym.wrappers.episode.read_episode` and view it with ``agemem view``.
"""

from agemem_gym.wrappers.episode import Episode, read_episode
from agemem_gym.wrappers.record import RecordEpisode, maybe_record, recording_env_fns

__all__ = ["Episode", "RecordEpisode", "maybe_record", "read_episode", "recording_env_fns"]
