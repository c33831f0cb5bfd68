"""The output folder of ``agemem eval``: never overwritten silently, saved as it goes, resumable.

A folder records its run's settings in ``results.json``, which is rewritten (atomically) before
the first panel and after each finished (benchmark, policy) panel, with ``status`` ``"partial"``
and the ``missing`` panels until the last one is done. Reusing a folder:

- empty or new: the run starts;
- results of other settings: refused, naming the first differences (``--overwrite`` replaces them);
- a partial run of the same settings: refused unless ``--resume`` (run only what is missing);
- a failed run of the same settings (a panel could not run, see ``errors``): refused unless
  ``--resume`` (play the failed panels again);
- a complete run of the same settings: refused, nothing to do; ``--resume`` re-renders the
  report and plots from ``results.json`` without playing an episode;
- a run that finished no panel (it failed or was stopped before the first): not a use of the
  folder, whatever its settings; it is replaced.

``--overwrite`` removes the previous ``report.md``, ``results.json`` and the whole ``plots/`` folder
first, so no stale plot stays.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from agemem_gym.error import InvalidConfig

__all__ = ["OutputFolder", "settings_of", "setting_differences", "panel_counts", "finished_panels"]

RESULTS = "results.json"
REPORT = "report.md"
PLOTS = "plots"

# the settings that decide the numbers; num_envs and vector_mode do not (tests/harness/test_eval.py)
_SETTINGS = ("suites", "benchmarks", "policies", "episodes", "seed", "judge", "env_kwargs", "policy_kwargs")


def settings_of(result: Mapping[str, Any]) -> dict[str, Any]:
    """The settings a result was made with, in the order they are compared, as plain JSON values."""
    cfg = result.get("config", {})
    out: dict[str, Any] = {key: cfg.get(key) for key in _SETTINGS if key != "benchmarks"}
    out["benchmarks"] = [
        f"{b.get('label')}={b.get('env_id')} v{b.get('version')} {json.dumps(b.get('env_kwargs', {}), sort_keys=True)}"
        for b in result.get("benchmarks", [])
    ]
    # a policy without arguments adds nothing: else a changed --policy list shows up twice
    out["policy_kwargs"] = {k: v for k, v in (out.get("policy_kwargs") or {}).items() if v}
    judge = out.get("judge") or {}
    out["judge"] = {"answer": judge.get("answer"), "memory": judge.get("memory")}
    plain: dict[str, Any] = json.loads(json.dumps(out, default=float))
    return {key: plain[key] for key in _SETTINGS}


def _short(value: Any, limit: int = 60) -> str:
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def setting_differences(old: Mapping[str, Any], new: Mapping[str, Any], limit: int = 3) -> list[str]:
    """``"key: old -> new"`` for the first ``limit`` settings that differ."""
    a, b = settings_of(old), settings_of(new)
    keys = [k for k in _SETTINGS if a[k] != b[k]]
    return [f"{k}: {_short(a[k])} -> {_short(b[k])}" for k in keys[:limit]]


def panel_counts(result: Mapping[str, Any]) -> tuple[int, int]:
    """``(done, total)`` (benchmark, policy) panels of a result."""
    total = len(result.get("benchmarks", [])) * len(result.get("config", {}).get("policies", []))
    return total - len(result.get("missing", [])), total


def finished_panels(result: Mapping[str, Any]) -> int:
    """How many (benchmark, policy) panels of a result were played to the end (failed ones not)."""
    return sum(len(per) for per in (result.get("results") or {}).values() if isinstance(per, Mapping))


class OutputFolder:
    """The folder ``agemem eval --out`` writes into.

    Args:
        path: The folder (created when the run starts).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.results = self.path / RESULTS
        self.report = self.path / REPORT
        self.plots = self.path / PLOTS

    def load(self) -> dict[str, Any] | None:
        """The saved result, or ``None`` when there is none.

        Raises:
            InvalidConfig: ``results.json`` exists but is not an eval result.
        """
        if not self.results.exists():
            return None
        try:
            data = json.loads(self.results.read_text())
        except (OSError, ValueError) as exc:
            raise InvalidConfig(f"{self.results} is not readable ({exc}); use --overwrite or another --out") from exc
        if not isinstance(data, dict) or "config" not in data:
            raise InvalidConfig(f"{self.results} is not an agemem eval result; use --overwrite or another --out")
        data.setdefault("missing", [])  # results.json of an older version: always complete
        data.setdefault("status", "partial" if data["missing"] else "complete")
        return data

    def prepare(self, planned: Mapping[str, Any], *, resume: bool, overwrite: bool) -> dict[str, Any] | None:
        """Decide what a run with the ``planned`` (empty) result may do with this folder.

        Args:
            planned: The result before any panel ran (:func:`~agemem_gym.harness.evaluate.plan_suite`).
            resume: ``--resume``: continue a run of the same settings.
            overwrite: ``--overwrite``: remove the previous outputs first.

        Returns:
            The earlier result whose finished panels the run reuses, or ``None`` to start afresh.

        Raises:
            InvalidConfig: The folder holds other results and no flag allows using it (one line).
        """
        if resume and overwrite:
            raise InvalidConfig("--resume and --overwrite exclude each other: continue a run, or replace it")
        if overwrite:
            self.clear()
            return None
        previous = self.load()
        if previous is None:
            if self.report.exists() or self.plots.exists():
                raise InvalidConfig(
                    f"{self.path} holds eval outputs without {RESULTS}; "
                    "use --overwrite to replace them or another --out"
                )
            return None
        if not finished_panels(previous):
            self.clear()  # nothing of it is worth keeping: a failed start must not block the fixed command
            return None
        self._check_reusable(previous, planned, resume)
        return previous

    def _check_reusable(self, previous: Mapping[str, Any], planned: Mapping[str, Any], resume: bool) -> None:
        diffs = setting_differences(previous, planned)
        if diffs:
            raise InvalidConfig(
                f"{self.path} holds results of other settings ({'; '.join(diffs)}); "
                "use --overwrite to replace them or another --out"
            )
        if resume:
            return
        done, total = panel_counts(previous)
        if previous["status"] == "complete":
            raise InvalidConfig(
                f"{self.path} already holds the complete results of these settings ({total} panels); nothing to run "
                "(--resume re-renders the report, --overwrite reruns everything)"
            )
        if previous["status"] == "failed":
            failed = total - finished_panels(previous)
            raise InvalidConfig(
                f"{self.path} holds a run of these settings in which {failed} of {total} panels failed "
                "(see its report.md); add --resume to play them again or --overwrite to start afresh"
            )
        raise InvalidConfig(
            f"{self.path} holds a partial run of these settings ({done} of {total} panels done); "
            "add --resume to finish it or --overwrite to start afresh"
        )

    def clear(self) -> None:
        """Remove the previous report, results and every plot (nothing else in the folder)."""
        for path in (self.report, self.results, self.results.with_suffix(".json.tmp")):
            path.unlink(missing_ok=True)
        if self.plots.exists():
            shutil.rmtree(self.plots)

    def save(self, result: Mapping[str, Any]) -> None:
        """Write ``results.json`` atomically: an interrupt leaves the old or the new file, never half of one."""
        self.path.mkdir(parents=True, exist_ok=True)
        tmp = self.results.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(result, indent=2, default=float))
        os.replace(tmp, self.results)

    def write_report(self, text: str) -> None:
        """Write ``report.md``."""
        self.path.mkdir(parents=True, exist_ok=True)
        self.report.write_text(text)

    def write_plots(self, result: Mapping[str, Any]) -> list[Path]:
        """Replace ``plots/`` with the plots of ``result``; returns their paths."""
        from agemem_gym.harness.plots import write_plots

        if self.plots.exists():
            shutil.rmtree(self.plots)  # plots of an earlier render must not stay beside the new ones
        return write_plots(result, self.plots)
