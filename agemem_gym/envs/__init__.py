"""Task environments, one per module (imported lazily by the registry's string entry points)."""

from agemem_gym.envs.hotpotqa import HotpotQAEnv

__all__ = ["HotpotQAEnv"]
