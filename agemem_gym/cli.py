"""The ``agemem`` command. Each subcommand lives in :mod:`agemem_gym.commands`.

Example::

    agemem list
    agemem run AgeMem/HotpotQA-v0 --policy oracle --episodes 20 --seed 0

Errors: a user mistake (a bad name, path, value or argument: an
:class:`agemem_gym.error.Error`, or an argparse error) ends in ONE line on stderr,
``agemem: error: <what was wrong and what to do>``, and exit status 2. Ctrl-C prints one
line and exits 130; a closed stdout (``agemem run ... | head``) exits 141 quietly.
``--debug`` (or ``AGEMEM_DEBUG=1``) shows the traceback instead.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from agemem_gym.commands import COMMANDS

__all__ = ["main", "build_parser"]

EXIT_USAGE = 2
"""Exit status of a user mistake."""
EXIT_INTERRUPTED = 130
"""Exit status after Ctrl-C (128 + SIGINT, as shells report it)."""
EXIT_BROKEN_PIPE = 141
"""Exit status when stdout's reader left (128 + SIGPIPE, as ``yes | head`` reports it)."""


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (argparse prints the usage first)."""

    def error(self, message: str) -> NoReturn:
        """Print ``agemem: error: ...`` with a pointer to ``--help`` and exit with status 2."""
        self.exit(EXIT_USAGE, f"agemem: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = _Parser(prog="agemem", description="agemem-gym: memory-managing LLM agents.")
    debug_help = "show the full traceback of an error (or set AGEMEM_DEBUG=1)"
    parser.add_argument("--debug", action="store_true", help=debug_help)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(module_name)
        command = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.configure(command)
        # also after the subcommand; SUPPRESS keeps a global --debug from being reset to False
        command.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=debug_help)
        command.set_defaults(_module=module)
    return parser


def _debug(args: argparse.Namespace | None) -> bool:
    """``--debug`` given, or ``AGEMEM_DEBUG`` set to anything but empty/0/false/no."""
    if args is not None and getattr(args, "debug", False):
        return True
    return os.environ.get("AGEMEM_DEBUG", "").strip().lower() not in ("", "0", "false", "no")


def _one_line(text: str) -> str:
    """Messages are one line: a multi-line exception text is joined."""
    return " ".join(part.strip() for part in str(text).splitlines() if part.strip())


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``agemem`` command; returns the exit status."""
    from agemem_gym.error import Error

    args: argparse.Namespace | None = None
    try:
        args = build_parser().parse_args(argv)
        status = int(args._module.main(args))
        sys.stdout.flush()  # here, not at exit: a reader that left is caught below
        return status
    except Error as exc:  # a bad name, path or argument: say what is wrong, no traceback
        if _debug(args):
            raise
        print(f"agemem: error: {_one_line(str(exc))}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        if _debug(args):
            raise
        print("agemem: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `agemem run ... | head`: the reader left; files were written first
        _silence_stdout()
        return EXIT_BROKEN_PIPE


def _silence_stdout() -> None:
    """Point stdout at /dev/null so that the interpreter's final flush does not fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # no file descriptor (a captured stream): nothing will flush
        pass


if __name__ == "__main__":
    raise SystemExit(main())
