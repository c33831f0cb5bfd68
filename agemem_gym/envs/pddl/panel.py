"""The bundled PDDL problems: where they live, and a process-wide cache of parsed problems.

Files follow PDDLGym's layout: ``<domain>.pddl`` next to ``<domain>/`` (train problems)
and ``<domain>_test/`` (test problems). A problem's key is its path without the suffix,
e.g. ``"blocks/problem1"`` or ``"blocks_test/problem2"``. Parsing with the lark-based
``pddl`` parser takes 0.1–0.5 s per file, so each file is parsed once per process and the
(immutable) result is shared by every env.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

from agemem_gym.envs.pddl.parsing import parse_domain, parse_problem
from agemem_gym.envs.pddl.strips import Domain, StripsSimulator
from agemem_gym.error import DataNotFound

__all__ = ["DATA_DIR", "bundled_problems", "domain_of", "load_domain", "load_problem", "split_of"]

DATA_DIR = Path(__file__).parent / "data"


def _natural(key: str) -> list[object]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", key)]


def domain_of(key: str) -> str:
    """``"blocks_test/problem2"`` → ``"blocks"``."""
    return key.split("/", 1)[0].removesuffix("_test")


def split_of(key: str) -> str:
    """``"train"`` or ``"test"``."""
    return "test" if key.split("/", 1)[0].endswith("_test") else "train"


def bundled_problems(data_dir: Path = DATA_DIR) -> list[str]:
    """Every problem key under ``data_dir``, in natural order (``problem2`` before ``problem10``)."""
    keys = []
    for domain_file in sorted(data_dir.glob("*.pddl")):
        for folder in (domain_file.stem, f"{domain_file.stem}_test"):
            keys += [f"{folder}/{p.stem}" for p in (data_dir / folder).glob("*.pddl")]
    return sorted(keys, key=_natural)


@functools.lru_cache(maxsize=32)
def load_domain(data_dir: Path, name: str) -> tuple[Domain, dict[str, frozenset[str]]]:
    """The parsed domain ``name`` and its type closure (cached)."""
    path = data_dir / f"{name}.pddl"
    if not path.is_file():
        raise DataNotFound(f"no PDDL domain file {path}; expected <data_dir>/<domain>.pddl")
    return parse_domain(path.read_text(encoding="utf-8"))


@functools.lru_cache(maxsize=512)
def load_problem(data_dir: Path, key: str) -> StripsSimulator:
    """A simulator for problem ``key`` (cached; simulators are safe to share)."""
    path = data_dir / f"{key}.pddl"
    if not path.is_file():
        raise DataNotFound(f"no PDDL problem file {path}; expected <data_dir>/<domain>[_test]/<problem>.pddl")
    domain, closure = load_domain(data_dir, domain_of(key))
    return StripsSimulator(domain, parse_problem(path.read_text(encoding="utf-8"), domain, closure))
