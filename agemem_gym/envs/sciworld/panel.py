"""Which ScienceWorld variations an env plays, and their gold paths.

A *panel entry* is one variation of one task (the episode's world) plus a *related*
variation of the same task from the train split, whose gold path is Stage-1 material.
Variations are drawn with our own seeded generator (the simulator's
``getRandomVariation*`` draws on the Java side and cannot be seeded), skipping those whose
gold path is longer than ``max_gold_steps``.

Generating a gold path takes 0.1–3 s (30 s for the mendelian-genetics tasks), so the
default panel ships precomputed in ``agemem_gym/data/sciworld_panel.json``. Rebuild it
after upgrading ``scienceworld`` with::

    python -m agemem_gym.envs.sciworld.panel agemem_gym/data/sciworld_panel.json

(which also replays every gold path and keeps only variations whose path reaches score
100).
"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Sequence
from importlib import resources
from typing import Any

import numpy as np

from agemem_gym.envs.sciworld.engine import ScienceWorldEngine
from agemem_gym.error import DataFormatError, InvalidConfig
from agemem_gym.seeding import stable_seed

__all__ = [
    "DEFAULT_TASKS",
    "PanelEntry",
    "Variation",
    "PanelSpec",
    "BUNDLED_PANEL",
    "load_bundled",
    "select_entries",
    "build_panel",
]

# Ten tasks over ScienceWorld's topics whose test variations have gold paths of <= 40 actions
# (the matter tasks, boil/melt/freeze, need 52-138 and are left to custom panels).
DEFAULT_TASKS = (
    "chemistry-mix",
    "chemistry-mix-paint-secondary-color",
    "find-animal",
    "find-plant",
    "identify-life-stages-2",
    "lifespan-longest-lived",
    "measure-melting-point-known-substance",
    "power-component",
    "test-conductivity",
    "use-thermometer",
)
BUNDLED_PANEL = "sciworld_panel.json"
_FORMAT = 1
_CANDIDATES = 12  # variations tried per slot before giving up on the gold-length limit


@dataclasses.dataclass(frozen=True)
class Variation:
    """One variation's task description and gold path."""

    task: str
    variation: int
    description: str
    gold: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class PanelEntry:
    """One task of the panel: the world to play and the related variation shown in Stage 1."""

    task: str
    variation: int
    related: int

    @property
    def key(self) -> str:
        """The task id, e.g. ``"use-thermometer/503"``."""
        return f"{self.task}/{self.variation}"


@dataclasses.dataclass(frozen=True)
class PanelSpec:
    """How a panel is chosen (two equal specs give the same panel)."""

    split: str = "test"
    per_task: int = 3
    max_gold_steps: int = 40
    simplifications: str = ""

    def __post_init__(self) -> None:
        if self.split not in ("train", "dev", "test"):
            raise InvalidConfig(f"split must be 'train', 'dev' or 'test', got {self.split!r}")
        if not isinstance(self.per_task, int) or self.per_task < 1:
            raise InvalidConfig(f"variations_per_task must be a positive int, got {self.per_task!r}")
        if not isinstance(self.max_gold_steps, int) or self.max_gold_steps < 1:
            raise InvalidConfig(f"max_gold_steps must be a positive int, got {self.max_gold_steps!r}")


def _shuffled(values: Sequence[int], *key: object) -> list[int]:
    order = np.random.default_rng(stable_seed("sciworld", *key)).permutation(len(values))
    return [int(values[i]) for i in order]


def _gold(engine: ScienceWorldEngine, task: str, variation: int, simplifications: str) -> Variation:
    engine.load(task, variation, simplifications, gold=True)
    return Variation(task, variation, engine.description(), tuple(engine.gold_path()))


def _verified(engine: ScienceWorldEngine, v: Variation, simplifications: str) -> bool:
    engine.load(v.task, v.variation, simplifications)
    engine.reset()
    for action in v.gold:
        _, score = engine.step(action)
        if score >= 100:
            return True
        if score < 0:
            return False
    return False


def select_entries(
    engine: ScienceWorldEngine, task: str, spec: PanelSpec, *, verify: bool = False
) -> tuple[list[PanelEntry], dict[tuple[str, int], Variation]]:
    """Choose ``spec.per_task`` variations of ``task`` and a related train variation for each.

    Args:
        engine: A running simulator.
        task: A ScienceWorld task name.
        spec: The selection rule.
        verify: Also replay each gold path and skip variations whose path does not win.

    Returns:
        The entries and the variations they use (with gold paths).
    """
    known: dict[tuple[str, int], Variation] = {}

    def usable(variation: int) -> bool:
        v = _gold(engine, task, variation, spec.simplifications)
        ok = 0 < len(v.gold) <= spec.max_gold_steps and not v.gold[0].startswith("ERROR")
        if ok and verify:
            ok = _verified(engine, v, spec.simplifications)
        if ok:
            known[(task, variation)] = v
        return ok

    chosen: list[int] = []
    for variation in _shuffled(engine.variations(task, spec.split), task, spec.split)[:_CANDIDATES]:
        if len(chosen) == spec.per_task:
            break
        if usable(variation):
            chosen.append(variation)
    related_pool = [v for v in _shuffled(engine.variations(task, "train"), task, "related") if v not in chosen]
    entries: list[PanelEntry] = []
    for i, variation in enumerate(chosen):
        # a different related variation per entry where the pool allows it
        for related in related_pool[i:] + related_pool[:i]:
            if (task, related) in known or usable(related):
                entries.append(PanelEntry(task, variation, related))
                break
    if len(entries) < spec.per_task:
        raise InvalidConfig(
            f"ScienceWorld task {task!r} has fewer than {spec.per_task} {spec.split} variations with a gold path "
            f"of at most {spec.max_gold_steps} actions; raise max_gold_steps or lower variations_per_task"
        )
    return entries, known


def load_bundled() -> tuple[PanelSpec, list[PanelEntry], dict[tuple[str, int], Variation]]:
    """The precomputed default panel.

    Returns:
        The spec it was built with, its entries (``DEFAULT_TASKS`` order) and their variations.
    """
    text = resources.files("agemem_gym.data").joinpath(BUNDLED_PANEL).read_text(encoding="utf-8")
    try:
        data = json.loads(text)
        if data.get("format") != _FORMAT:
            raise ValueError(f"format {data.get('format')!r}, expected {_FORMAT}")
        spec = PanelSpec(**data["spec"])
        entries = [PanelEntry(e["task"], int(e["variation"]), int(e["related"])) for e in data["entries"]]
        variations = {
            (v["task"], int(v["variation"])): Variation(
                v["task"], int(v["variation"]), v["description"], tuple(v["gold"])
            )
            for v in data["variations"]
        }
    except (ValueError, KeyError, TypeError) as exc:
        raise DataFormatError(f"the bundled {BUNDLED_PANEL} is malformed ({exc}); rebuild it (see panel.py)") from exc
    return spec, entries, variations


def build_panel(
    tasks: Sequence[str] = DEFAULT_TASKS, spec: PanelSpec | None = None, engine: ScienceWorldEngine | None = None
) -> dict[str, Any]:
    """Select and verify a panel; return it in the bundled file's format."""
    spec = spec or PanelSpec()
    own = engine is None
    engine = engine or ScienceWorldEngine()
    try:
        from scienceworld.version import __version__ as sw_version

        entries: list[PanelEntry] = []
        variations: dict[tuple[str, int], Variation] = {}
        for task in tasks:
            found, known = select_entries(engine, task, spec, verify=True)
            entries += found
            used = {(e.task, v) for e in found for v in (e.variation, e.related)}
            variations.update({k: v for k, v in known.items() if k in used})
    finally:
        if own:
            engine.close()
    return {
        "format": _FORMAT,
        "scienceworld": sw_version,
        "spec": dataclasses.asdict(spec),
        "entries": [dataclasses.asdict(e) for e in entries],
        "variations": [dataclasses.asdict(v) | {"gold": list(v.gold)} for v in variations.values()],
    }


if __name__ == "__main__":
    panel = build_panel()
    out = sys.argv[1] if len(sys.argv) > 1 else BUNDLED_PANEL
    with open(out, "w", encoding="utf-8") as fh:
        json.dump(panel, fh, indent=1)
        fh.write("\n")
    print(f"wrote {out}: {len(panel['entries'])} entries, {len(panel['variations'])} variations")
