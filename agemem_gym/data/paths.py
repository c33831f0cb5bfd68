"""Where a user-supplied dataset file is: an argument, else an environment variable."""

from __future__ import annotations

import os
from pathlib import Path

from agemem_gym.error import DataNotFound

__all__ = ["resolve_data_file"]


def resolve_data_file(data_path: str | os.PathLike[str] | None, env_var: str, name: str, where: str) -> Path:
    """``data_path``, else ``$env_var``, as an existing file.

    Args:
        data_path: The path the caller gave (``None``: read ``env_var``).
        env_var: The environment variable that may hold the path.
        name: The dataset's name, for the error message.
        where: How to get the file and point to it (appended to every error).

    Raises:
        DataNotFound: Neither is set, or the path is not a file.
    """
    raw = data_path if data_path is not None else os.environ.get(env_var)
    if not raw:
        raise DataNotFound(where)
    path = Path(raw)
    if not path.is_file():
        raise DataNotFound(f"no {name} file at {path}. {where}")
    return path
