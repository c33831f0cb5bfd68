"""Where a result came from: package version, git revision, env versions, machine."""

from __future__ import annotations

import platform
import re
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym

__all__ = ["git_revision", "env_versions", "redact_secrets", "run_metadata"]


def git_revision(path: str | Path | None = None) -> str:
    """The git commit of the checkout holding ``path`` (default: this package), ``"unknown"`` outside one.

    A ``+dirty`` suffix marks uncommitted changes to tracked files.
    """
    where = Path(path) if path is not None else Path(__file__).resolve().parent
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=where,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return rev + ("+dirty" if dirty else "")


def env_versions(env_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """For each id: its version number, entry point and registered kwargs."""
    out = {}
    for env_id in env_ids:
        spec = gym.spec(env_id)
        out[env_id] = {
            "version": spec.version,
            "entry_point": str(spec.entry_point),
            "kwargs": {k: v for k, v in spec.kwargs.items() if isinstance(v, (str, int, float, bool, type(None)))},
        }
    return out


def run_metadata() -> dict[str, Any]:
    """Package, library and machine versions, and the git revision."""
    import numpy

    from agemem_gym.version import __version__

    return {
        "agemem_gym": __version__,
        "git_revision": git_revision(),
        "python": sys.version.split()[0],
        "gymnasium": gym.__version__,
        "numpy": numpy.__version__,
        "platform": platform.platform(),
    }


# exact key names: a substring match would also hide "max_new_tokens"
_SECRET_KEYS = frozenset({"api_key", "apikey", "token", "access_token", "auth_token", "secret", "password"})
_KEY_NAMES = "|".join(sorted(_SECRET_KEYS))
_SECRET_IN_TEXT = re.compile(r"""(["']?\b(?:""" + _KEY_NAMES + r""")\b["']?\s*[:=]\s*["']?)[^"',}\s]+""", re.IGNORECASE)


def redact_secrets(value: Any) -> Any:
    """``value`` with API keys and tokens replaced by ``"***"``, so results files can be shared.

    Mappings are redacted by key (``api_key``, ``token``, …, at any depth); strings (the
    recorded command line, which may carry ``--policy-kwargs`` JSON) by pattern.
    """
    if isinstance(value, Mapping):
        return {k: "***" if _is_secret(k) else redact_secrets(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(redact_secrets(v) for v in value)
    if isinstance(value, str):
        return _SECRET_IN_TEXT.sub(r"\1***", value)
    return value


def _is_secret(key: Any) -> bool:
    return isinstance(key, str) and key.lower() in _SECRET_KEYS
