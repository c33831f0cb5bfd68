"""``agemem list``: the registered environment ids and the policy names."""

from __future__ import annotations

import argparse

HELP = "list the registered environment ids and policies"


def configure(parser: argparse.ArgumentParser) -> None:
    """No arguments."""


def main(args: argparse.Namespace) -> int:
    """Print ids and policies."""
    from agemem_gym import env_ids, policies

    print("environments:")
    for env_id in env_ids():
        print(f"  {env_id}")
    print("policies:")
    for name in policies.names():
        print(f"  {name}")
    return 0
