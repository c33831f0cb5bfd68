"""Behaviour cloning (``agemem sft``): LoRA SFT on demonstrations, the warm start for GRPO.

* :mod:`~agemem_gym.adapters.sft.demos`: demonstrations from a policy played on the env's
  training tasks, or from ``--record`` files, successful episodes only (torch-free).
* :mod:`~agemem_gym.adapters.sft.loss`: the loss on the agent's tokens only, prompts rendered
  as the HF policy renders them, each batch's shared prefix computed once.
* :mod:`~agemem_gym.adapters.sft.train`: :func:`run_sft`, which writes a merged model folder.
"""

from agemem_gym.adapters.sft.demos import Demonstration, play_demonstrations, recorded_demonstrations

__all__ = ["Demonstration", "play_demonstrations", "recorded_demonstrations"]
