"""The ``agemem`` command. Each subcommand lives in :mod:`agemem_gym.commands`.

Example::

    agemem list
    agemem run AgeMem/HotpotQA-v0 --policy oracle --episodes 20 --seed 0
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from agemem_gym.commands import COMMANDS

__all__ = ["main", "build_parser"]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = argparse.ArgumentParser(prog="agemem", description="agemem-gym: memory-managing LLM agents.")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(module_name)
        command = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.configure(command)
        command.set_defaults(_module=module)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``agemem`` command; returns the exit status."""
    args = build_parser().parse_args(argv)
    from agemem_gym.error import Error

    try:
        return int(args._module.main(args))
    except Error as exc:  # a bad name, path or argument: say what is wrong, no traceback
        print(f"agemem: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
