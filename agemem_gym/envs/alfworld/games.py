"""ALFWorld game files: the bundled sample and directories of ``game.tw-pddl`` files.

A ``game.tw-pddl`` file is JSON with ``pddl_domain``, ``pddl_problem``, ``grammar`` (the
TextWorld grammar, which holds the task text), ``solvable`` and ``walkthrough`` (the
expert's commands). The task type is the prefix of the task folder's name
(``pick_clean_then_place_in_recep-Bowl-None-Cabinet-10`` → ``pick_clean_then_place_in_recep``).

The sample (``agemem_gym/data/alfworld_sample.jsonl.gz``, MIT, see
``ALFWORLD_LICENSE.md``) holds 18 games of the ``valid_unseen`` split, three per task type,
with the PDDL domain (identical in every game) stored once.
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import os
import re
from collections.abc import Mapping
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from agemem_gym.error import DataFormatError, DataNotFound

__all__ = ["Game", "TASK_TYPES", "BUNDLED_SAMPLE", "load_sample", "find_games", "game_data", "game_details"]

BUNDLED_SAMPLE = "alfworld_sample.jsonl.gz"
TASK_TYPES = (
    "pick_and_place_simple",
    "look_at_obj_in_light",
    "pick_clean_then_place_in_recep",
    "pick_heat_then_place_in_recep",
    "pick_cool_then_place_in_recep",
    "pick_two_obj_and_place",
)
_GAME_FILE = "game.tw-pddl"
_TASK_RULE = re.compile(r'"task"\s*:\s*\[\s*\{\s*"rhs"\s*:\s*"([^"]*)"')
_NEEDED = ("pddl_domain", "pddl_problem", "grammar", "walkthrough")
_DOWNLOAD_HINT = (
    "get the game files with `alfworld-download` (pip install alfworld; it needs github.com and writes "
    "$ALFWORLD_DATA/json_2.1.1) or unpack a split archive (e.g. `tar xzf valid_unseen_game_files.tar.gz`), then pass "
    "data_dir=<path>/json_2.1.1/valid_unseen"
)


@dataclasses.dataclass(frozen=True)
class Game:
    """One ALFWorld game (its file is read only when needed).

    Attributes:
        name: ``<split>/<task folder>/<trial>``, e.g.
            ``valid_unseen/pick_clean_then_place_in_recep-Bowl-None-Cabinet-10/trial_T2019...``.
        task_type: One of :data:`TASK_TYPES`.
        path: The game file, or ``None`` for a bundled game.
    """

    name: str
    task_type: str
    path: str | None = None

    @property
    def folder(self) -> str:
        """The task folder (one room and task; its trials differ in where the objects start)."""
        return self.name.split("/")[-2]


def _task_type(folder: str) -> str:
    return folder.split("-", 1)[0]


def _goal(grammar: str, where: str) -> str:
    found = _TASK_RULE.search(grammar)
    if found is None:
        raise DataFormatError(f"{where}: the grammar has no task rule (is it an ALFWorld game file?)")
    return found.group(1).removeprefix("Your task is to:").strip()


@lru_cache(maxsize=1)
def _sample() -> tuple[dict[str, Any], tuple[dict[str, Any], ...]]:
    raw = resources.files("agemem_gym.data").joinpath(BUNDLED_SAMPLE).read_bytes()
    lines = gzip.decompress(raw).decode("utf-8").splitlines()
    header, rows = json.loads(lines[0]), tuple(json.loads(line) for line in lines[1:])
    if header.get("format") != 1 or "pddl_domain" not in header:
        raise DataFormatError(f"the bundled {BUNDLED_SAMPLE} has an unknown format")
    return header, rows


def load_sample() -> list[Game]:
    """The 18 bundled games, in file order (task types grouped)."""
    _, rows = _sample()
    return [Game(r["name"], _task_type(r["name"].split("/")[-2])) for r in rows]


def game_data(game: Game) -> dict[str, Any]:
    """The game file's content (what TextWorld's PDDL backend loads)."""
    if game.path is None:
        header, rows = _sample()
        row = next(r for r in rows if r["name"] == game.name)
        return {"pddl_domain": header["pddl_domain"], **{k: row[k] for k in ("pddl_problem", "grammar", "walkthrough")}}
    return _read(game.path)


@lru_cache(maxsize=4096)
def game_details(game: Game) -> tuple[str, tuple[str, ...]]:
    """The task text (``"clean some bowl and put it in cabinet."``) and the walkthrough."""
    data = game_data(game)
    return _goal(data["grammar"], game.path or game.name), tuple(str(c) for c in data["walkthrough"])


def _read(path: str) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError, RecursionError) as exc:
        raise DataFormatError(f"cannot read ALFWorld game {path}: {exc}") from exc
    if not isinstance(data, Mapping) or any(k not in data for k in _NEEDED):
        raise DataFormatError(f"{path} is not an ALFWorld game file: it needs the keys {', '.join(_NEEDED)}")
    return dict(data)


def find_games(data_dir: str | os.PathLike[str]) -> list[Game]:
    """Every ``game.tw-pddl`` under ``data_dir`` (recursively, sorted by path).

    Args:
        data_dir: E.g. ``$ALFWORLD_DATA/json_2.1.1/valid_unseen`` (134 games) or
            ``.../valid_seen`` (140).

    Raises:
        DataNotFound: The folder does not exist or holds no game file (the message says how
            to get them).
    """
    root = Path(data_dir).expanduser()
    if not root.is_dir():
        raise DataNotFound(f"ALFWorld data_dir {str(root)!r} is not a directory; {_DOWNLOAD_HINT}")
    paths = sorted(root.rglob(_GAME_FILE))
    if not paths:
        raise DataNotFound(f"no ALFWorld {_GAME_FILE} files under {str(root)!r}; {_DOWNLOAD_HINT}")
    # <split>/<task folder>/<trial>/game.tw-pddl
    return [
        Game(
            f"{p.parent.parent.parent.name}/{p.parent.parent.name}/{p.parent.name}",
            _task_type(p.parent.parent.name),
            str(p),
        )
        for p in paths
    ]
