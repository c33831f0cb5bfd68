"""agemem-gym: Gymnasium environments and trainers for LLM agents that manage their memory."""

from agemem_gym.version import __version__

__all__ = ["__version__"]
