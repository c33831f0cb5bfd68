"""``learning.py``'s per-seed pipeline: stages with outputs, skipped when complete, run under a deadline.

A :class:`Stage` is one subprocess of ``learning.py`` (``warm``, ``train`` or ``eval`` mode) with
the stages it needs, a test of whether its output is complete, and its log. :func:`run_stages`
runs the incomplete ones in order, ``--jobs`` at a time, each once all it needs is complete; at the
deadline the running ones get SIGINT and nothing new starts. A stage's wall time is added to
``seed<N>/times.json`` (a training run stopped and resumed adds up its sittings).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import learning as L

MODELS = ("warm", "control", "trained")
"""The models each seed evaluates, in report order."""

STEPS = 24
"""GRPO steps of the pipeline's runs unless ``--steps`` says otherwise (the study's 20-30)."""

EVALS = ("warm", "control", "control-wiped", "trained", "trained-wiped")
"""The held-out panels of a seed (``-wiped``: the LTM emptied as Stage 3 begins)."""


@dataclasses.dataclass
class Stage:
    """One step of a seed's pipeline.

    Attributes:
        name: ``seed<N>/<stage>``, unique.
        needs: Names of the stages whose output it reads.
        done: Whether its output is complete.
        argv: Its ``learning.py`` command line (called when it starts: an evaluation's checkpoint
            is known only then).
        log: Where its output goes.
    """

    name: str
    needs: tuple[str, ...]
    done: Callable[[], bool]
    argv: Callable[[], list[str]]
    log: Path


# ============================================================================ one seed's stages
def run_complete(folder: Path, num_steps: int) -> bool:
    """Whether a training run folder holds the checkpoint of its last step (``checkpoint-<num_steps - 1>``)."""
    from agemem_gym.adapters.grpo.checkpoint import latest_checkpoint

    ckpt = latest_checkpoint(folder) if folder.is_dir() else None
    return ckpt is not None and int(ckpt.name.rsplit("-", 1)[1]) + 1 >= num_steps


def final_model(folder: Path) -> str:
    """The model of a run's newest checkpoint."""
    from agemem_gym.adapters.grpo.checkpoint import latest_checkpoint

    ckpt = latest_checkpoint(folder)
    if ckpt is None:
        raise FileNotFoundError(f"no checkpoint in {folder}")
    return str(ckpt / "model")


def base_args(args: argparse.Namespace) -> list[str]:
    """The options every stage of the pipeline shares (so the prompts are the same in all of them)."""
    out = L._common_args(args) + ["--tool-schemas", args.tool_schemas or "drop"]
    return out + (["--reward", args.reward] if args.reward else [])


def seed_stages(args: argparse.Namespace, out: Path, seed: int) -> list[Stage]:
    """The pipeline of one seed: warm start and its panel, trained and control runs, the other four panels."""
    folder = (out / f"seed{seed}").resolve()
    common = [*base_args(args), "--seed", str(seed)]
    num_steps = L._config(args, seed, None, folder / "unused").num_steps
    warm = folder / "warm"
    stages = [
        Stage(f"seed{seed}/warm", (), lambda: (warm / "sft.json").is_file(),
              lambda: ["warm", *common, "--folder", str(warm), "--warm-steps", str(args.warm_steps),
                       "--warm-mix", str(args.warm_mix), "--warm-lr", str(args.warm_lr)], folder / "warm.log"),
    ]  # fmt: skip
    extra = ["--eval-reps", str(args.eval_reps), "--eval-batch", str(args.eval_batch)]
    extra += ["--eval-seed", str(args.eval_seed)]
    for name in EVALS:
        if name == "control":  # the warm panel first: the warm start's score is known before GRPO begins
            stages += train_stages(folder, seed, common, num_steps)
        model = name.split("-")[0]
        path = folder / f"eval-{name}.json"
        source = (lambda: str(warm)) if model == "warm" else (lambda m=model: final_model(folder / m))
        wipe = ["--wipe"] if name.endswith("-wiped") else []
        stages.append(Stage(
            f"seed{seed}/eval-{name}", (f"seed{seed}/{model}",), path.is_file,
            (lambda s=source, p=path, w=wipe: ["eval", *common, "--model", s(), "--json", str(p), *extra, *w]),
            folder / f"eval-{name}.log",
        ))  # fmt: skip
    return stages


def train_stages(folder: Path, seed: int, common: list[str], num_steps: int) -> list[Stage]:
    """The trained run and its learning-rate-0 control, both from the seed's warm start."""
    stages: list[Stage] = []
    warm = folder / "warm"
    for kind, lr in (("trained", None), ("control", 0.0)):
        run = folder / kind
        argv = ["train", *common, "--set", f"model={warm}", "--folder", str(run), "--continue-run"]
        argv += [] if lr is None else ["--lr", str(lr)]
        done = lambda r=run: run_complete(r, num_steps)  # noqa: E731 - bound per run
        needs = (f"seed{seed}/warm",)
        stages.append(Stage(f"seed{seed}/{kind}", needs, done, lambda a=argv: a, folder / f"{kind}.log"))
    return stages


# ============================================================================ running them
def _record_time(name: str, seconds: float, out: Path) -> None:
    seed, stage = name.split("/", 1)
    path = out / seed / "times.json"
    times = json.loads(path.read_text()) if path.is_file() else {}
    times[stage] = round(times.get(stage, 0.0) + seconds, 1)
    path.write_text(json.dumps(times, indent=2))


def run_stages(
    stages: Sequence[Stage], parallel: int, deadline: float | None, out: Path, poll_s: float = 1.0
) -> dict[str, str]:
    """Run the incomplete stages (see the module docstring); return each stage's state.

    States: ``complete`` (before this call), ``done``, ``failed``, ``stopped`` (the deadline),
    ``not started`` (the deadline came first) and ``blocked`` (a stage it needs did not complete).
    """
    state = {s.name: "complete" if s.done() else "pending" for s in stages}
    running: list[tuple[Stage, subprocess.Popen[bytes], float]] = []
    stopping = False
    while any(v == "pending" for v in state.values()) or running:
        if deadline is not None and time.time() > deadline and not stopping:
            stopping = True
            for _, proc, _ in running:
                proc.send_signal(signal.SIGINT)
        for stage in stages:
            if state[stage.name] != "pending":
                continue
            needs = [state[n] for n in stage.needs]
            if stopping:
                state[stage.name] = "not started"
            elif any(n in ("failed", "stopped", "not started", "blocked") for n in needs):
                state[stage.name] = "blocked"
            elif len(running) < parallel and all(n in ("complete", "done") for n in needs):
                state[stage.name] = "running"
                running.append((stage, L._launch(stage.argv(), stage.log), time.time()))
        for stage, proc, t0 in [r for r in running if r[1].poll() is not None]:
            running.remove((stage, proc, t0))
            _record_time(stage.name, time.time() - t0, out)
            ok = proc.returncode == 0 and stage.done()
            state[stage.name] = "done" if ok else ("stopped" if stopping else "failed")
        time.sleep(poll_s if running else 0.0)
    return state


def check_fresh(args: argparse.Namespace, out: Path) -> str | None:
    """Why the run cannot start (a seed folder is in use and ``--resume`` was not given), or ``None``."""
    used = [f"seed{s}" for s in args.seeds if (out / f"seed{s}").is_dir() and any((out / f"seed{s}").iterdir())]
    if used and not args.resume:
        return f"{out} already holds {', '.join(used)}: pass --resume to continue, or pick another --out"
    return None


def drive(args: argparse.Namespace) -> int:
    """Run every seed's pipeline (seed-major, so a deadline cuts the last seeds), then write the merged report."""
    import learning_report

    out = Path(args.out)
    args.steps = args.steps or STEPS
    problem = check_fresh(args, out)
    if problem:
        print(problem)
        return 2
    out.mkdir(parents=True, exist_ok=True)
    L.prepare_model(args, out)
    deadline = time.time() + 60 * args.deadline_min if args.deadline_min else None
    stages = [s for seed in args.seeds for s in seed_stages(args, out, seed)]
    for seed in args.seeds:
        (out / f"seed{seed}").mkdir(exist_ok=True)
    state = run_stages(stages, args.jobs, deadline, out)
    print("\n".join(f"{name}: {st}" for name, st in state.items()))
    learning_report.write(out, None)
    unfinished = [n for n, st in state.items() if st not in ("complete", "done")]
    if unfinished:
        print(f"\n{len(unfinished)} stage(s) unfinished; continue with the same command and --resume.")
    return 1 if any(st in ("failed", "blocked") for st in state.values()) else 0
