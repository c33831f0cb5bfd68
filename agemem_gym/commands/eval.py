"""``agemem eval``: run policies over the paper's benchmarks and write the paper's tables.

Example::

    agemem eval --suite paper --policy no-memory --policy rag --policy oracle --episodes 20 --out results/eval
    agemem eval --policy openai:Qwen/Qwen3-8B --base-url http://localhost:8000/v1 --num-envs 8
"""

from __future__ import annotations

import argparse
import shlex
import sys
from typing import TYPE_CHECKING

from agemem_gym.commands._args import (
    ENV_KWARGS,
    POLICY_KWARGS_HELP,
    check_env_id,
    check_env_kwargs,
    check_model_option,
    json_object,
    non_negative_int,
    policies_with_model,
    policy_kwargs_by_name,
)
from agemem_gym.commands._outputs import check_output_dir

if TYPE_CHECKING:  # the harness imports gymnasium and the envs: keep `agemem --help` light
    from agemem_gym.harness.evaluate import SuitePlan
    from agemem_gym.harness.outputs import OutputFolder

HELP = "evaluate policies on a benchmark suite and write the paper's tables (Markdown, JSON, PNG)"


def configure(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``agemem eval``."""
    parser.add_argument(
        "--suite", action="append", default=None, help="paper (default), synthetic, locomo, longmemeval; repeatable"
    )
    parser.add_argument("--env", action="append", default=[], metavar="ID", help="an extra env id to run; repeatable")
    parser.add_argument(
        "--policy", action="append", required=True, help="policy name (agemem list shows them); repeat for columns"
    )
    parser.add_argument(
        "--model", default=None, help="for --policy hf and the *-style baselines: smollm2, tiny or a model folder"
    )
    parser.add_argument(
        "--base-url",
        default=None,
        help="for --policy openai:MODEL: the OpenAI-compatible endpoint, e.g. http://localhost:8000/v1 "
        "($OPENAI_BASE_URL; key from $OPENAI_API_KEY)",
    )
    parser.add_argument(
        "--policy-kwargs",
        type=json_object('{"rag": {"top_k": 3}}'),
        default={},
        help=POLICY_KWARGS_HELP,
    )
    parser.add_argument("--episodes", type=int, default=20, help="episodes per benchmark (the seeded panel length)")
    parser.add_argument(
        "--seed", type=non_negative_int, default=0, help="base seed: episode i uses task i and seed + i"
    )
    parser.add_argument("--num-envs", type=int, default=2, help="sub-environments per vector env")
    parser.add_argument("--vector-mode", choices=("sync", "async", "ray"), default="sync", help="async/ray: workers")
    parser.add_argument("--judge", default="f1", help="f1 (offline, default), em, hf:MODEL or openai:MODEL")
    parser.add_argument("--judge-base-url", default=None, help="endpoint for openai: judges ($OPENAI_BASE_URL)")
    parser.add_argument(
        "--env-kwargs", type=json_object(ENV_KWARGS), default={}, help="JSON object passed to every gym.make"
    )
    parser.add_argument("--out", default="agemem-eval", metavar="DIR", help="output folder (report.md, results.json)")
    parser.add_argument(
        "--resume", action="store_true", help="continue the run saved in --out: play only its missing panels"
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="remove the report, results and plots already in --out first"
    )
    parser.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def main(args: argparse.Namespace) -> int:
    """Evaluate, then write ``report.md``, ``results.json`` and ``plots/*.png`` into ``--out``.

    ``results.json`` is saved after each finished (benchmark, policy) panel; a folder holding
    other results is refused unless ``--overwrite``, a partial one is finished with ``--resume``;
    Ctrl-C writes the partial report and returns 130; a run in which a panel failed returns 1.
    """
    from agemem_gym.harness.evaluate import plan_suite

    policy_kwargs = _check(args)
    plan = plan_suite(
        args.policy,
        suites=_suites(args),
        env_ids=args.env,
        episodes=args.episodes,
        seed=args.seed,
        num_envs=args.num_envs,
        vector_mode=args.vector_mode,
        judge=args.judge,
        judge_base_url=args.judge_base_url,
        policy_kwargs=policy_kwargs,
        env_kwargs=args.env_kwargs,
        command="agemem eval " + " ".join(shlex.quote(a) for a in sys.argv[2:])
        if len(sys.argv) > 1 and sys.argv[1] == "eval"
        else "",
    )
    return _run(plan, args)


def _run(plan: SuitePlan, args: argparse.Namespace) -> int:
    """Lock the output folder for this run alone, then play in it; a second run on it is refused."""
    from agemem_gym.commands._lock import folder_lock

    with folder_lock(args.out, "--out"):
        return _run_locked(plan, args)


def _run_locked(plan: SuitePlan, args: argparse.Namespace) -> int:
    """Claim the output folder, play what is missing (saving after each panel), write the report."""
    from agemem_gym.harness.evaluate import run_plan
    from agemem_gym.harness.outputs import OutputFolder, panel_counts
    from agemem_gym.harness.report import render_report

    folder = OutputFolder(args.out)
    previous = folder.prepare(plan.result, resume=args.resume, overwrite=args.overwrite)
    if previous is not None:
        done, total = panel_counts(previous)
        print(f"resuming from {folder.path}: {done} of {total} panels done", file=sys.stderr)
    elif args.resume:
        print(f"nothing to resume in {folder.path}; starting afresh", file=sys.stderr)
    try:
        result = run_plan(plan, reuse=previous, on_save=folder.save, progress=not args.no_progress)
    except KeyboardInterrupt:
        return _interrupted(folder)
    report = render_report(result)
    folder.write_report(report)
    written = [] if args.no_plots else folder.write_plots(result)
    print(report)
    print(f"wrote {folder.report}, {folder.results} and {len(written)} plots in {folder.plots}")
    if result["status"] == "failed":
        failed = sum(len(per) for per in result["errors"].values())
        print(
            f"agemem: {failed} of {panel_counts(result)[1]} panels failed (reasons in {folder.report}); "
            "play them again with --resume",
            file=sys.stderr,
        )
        return 1
    return 0


def _interrupted(folder: OutputFolder) -> int:
    """After Ctrl-C: the report of the panels saved so far, and one line saying how to go on."""
    from agemem_gym.harness.outputs import panel_counts
    from agemem_gym.harness.report import render_report

    saved = folder.load()
    if saved is None:
        print("interrupted before any benchmark ran; nothing written", file=sys.stderr)
        return 130
    folder.write_report(render_report(saved))
    done, total = panel_counts(saved)
    print(
        f"interrupted: {done} of {total} benchmark panels done; partial report in {folder.path}; resume with --resume",
        file=sys.stderr,
    )
    return 130  # 128 + SIGINT, the shell's status for a command stopped by Ctrl-C


def _suites(args: argparse.Namespace) -> list[str]:
    """``--suite`` as given; without it the paper suite, unless ``--env`` names the envs."""
    return list(args.suite) if args.suite is not None else ([] if args.env else ["paper"])


def _check(args: argparse.Namespace) -> dict[str, dict[str, object]]:
    """Validate the arguments before any model loads; returns each policy's keyword arguments."""
    from agemem_gym import policies
    from agemem_gym.error import InvalidConfig

    if args.episodes < 1:
        raise InvalidConfig(f"--episodes must be >= 1, got {args.episodes}")
    if args.num_envs < 1:
        raise InvalidConfig(f"--num-envs must be >= 1, got {args.num_envs}")
    check_output_dir(args.out, "--out")
    for env_id in args.env:
        check_env_id(env_id)
    from agemem_gym.harness.suites import resolve_suites

    benches = resolve_suites(_suites(args), args.env)
    check_env_kwargs(args.env_kwargs, [bench.env_id for bench in benches])
    given = policy_kwargs_by_name(args.policy_kwargs, args.policy)
    check_model_option(args.model, args.policy)
    takers = set(policies_with_model())
    served = [name for name in args.policy if "base_url" in policies.arguments(name)]
    if args.base_url is not None and not served:
        raise InvalidConfig(f"--base-url applies to openai:MODEL policies; {', '.join(args.policy)} takes none")
    policy_kwargs = {}
    for name in args.policy:
        policy_kwargs[name] = dict(given[name])
        if args.model is not None and name in takers:
            policy_kwargs[name].setdefault("model", args.model)
        if args.base_url is not None and name in served:
            policy_kwargs[name].setdefault("base_url", args.base_url)
        policies.check_arguments(name, policy_kwargs[name])
    return policy_kwargs
