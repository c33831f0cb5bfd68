"""``agemem list``: the registered environment ids, the team variants, the policies and the training presets."""

from __future__ import annotations

import argparse

HELP = "list the environment ids, PettingZoo team variants, policies and training presets"


def configure(parser: argparse.ArgumentParser) -> None:
    """No arguments."""


def _team_variants() -> list[str] | None:
    """The PettingZoo team variants, or ``None`` when PettingZoo is not installed."""
    from agemem_gym.error import DependencyNotInstalled

    try:
        from agemem_gym.adapters.pettingzoo import VARIANTS
    except (DependencyNotInstalled, ImportError):
        return None
    return list(VARIANTS)


def main(args: argparse.Namespace) -> int:
    """Print ids, team variants, policies and presets."""
    from agemem_gym import env_ids, policies
    from agemem_gym.adapters.grpo.config import PRESETS

    print("environments:")
    for env_id in env_ids():
        print(f"  {env_id}")
    variants = _team_variants()
    print("team variants (agemem_gym.adapters.pettingzoo.make_parallel):")
    if variants is None:
        print('  (needs PettingZoo: pip install "agemem-gym[pettingzoo]")')
    for name in variants or ():
        print(f"  {name}")
    print("policies:")
    for name in policies.names():
        print(f"  {name}" + ("  (as openai:MODEL, with --base-url URL)" if name == "openai" else ""))
    print("training presets (agemem train --config):")
    for name in PRESETS:
        print(f"  {name}")
    return 0
