"""``agemem eval``: run policies over the paper's benchmarks and write the paper's tables.

Example::

    agemem eval --suite paper --policy no-memory --policy rag --policy oracle --episodes 20 --out results/eval
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from agemem_gym.commands._args import (
    check_env_id,
    check_env_kwargs,
    check_model_option,
    json_object,
    policies_with_model,
)

HELP = "evaluate policies on a benchmark suite and write the paper's tables (Markdown, JSON, PNG)"


def configure(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``agemem eval``."""
    parser.add_argument("--suite", action="append", default=None, help="paper (default), synthetic, locomo; repeatable")
    parser.add_argument("--env", action="append", default=[], metavar="ID", help="an extra env id to run; repeatable")
    parser.add_argument(
        "--policy", action="append", required=True, help="policy name (agemem list shows them); repeat for columns"
    )
    parser.add_argument(
        "--model", default=None, help="for --policy hf and the *-style baselines: smollm2, tiny or a model folder"
    )
    parser.add_argument(
        "--policy-kwargs", type=json_object, default={}, help='JSON {"policy name": {arguments}} for constructors'
    )
    parser.add_argument("--episodes", type=int, default=20, help="episodes per benchmark (the seeded panel length)")
    parser.add_argument("--seed", type=int, default=0, help="base seed: episode i uses task i and seed + i")
    parser.add_argument("--num-envs", type=int, default=2, help="sub-environments per vector env")
    parser.add_argument("--vector-mode", choices=("sync", "async"), default="sync", help="async: worker processes")
    parser.add_argument("--judge", default="f1", help="f1 (offline, default), em, hf:MODEL or openai:MODEL")
    parser.add_argument("--judge-base-url", default=None, help="endpoint for openai: judges ($OPENAI_BASE_URL)")
    parser.add_argument("--env-kwargs", type=json_object, default={}, help="JSON object passed to every gym.make")
    parser.add_argument("--out", default="agemem-eval", metavar="DIR", help="output folder (report.md, results.json)")
    parser.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def main(args: argparse.Namespace) -> int:
    """Evaluate, then write ``report.md``, ``results.json`` and ``plots/*.png`` into ``--out``."""
    from agemem_gym.harness.evaluate import evaluate_suite
    from agemem_gym.harness.report import render_report

    policy_kwargs = _check(args)
    suites = args.suite if args.suite is not None else ([] if args.env else ["paper"])
    result = evaluate_suite(
        args.policy,
        suites=suites,
        env_ids=args.env,
        episodes=args.episodes,
        seed=args.seed,
        num_envs=args.num_envs,
        vector_mode=args.vector_mode,
        judge=args.judge,
        judge_base_url=args.judge_base_url,
        policy_kwargs=policy_kwargs,
        env_kwargs=args.env_kwargs,
        progress=not args.no_progress,
        command="agemem eval " + " ".join(shlex.quote(a) for a in sys.argv[2:])
        if len(sys.argv) > 1 and sys.argv[1] == "eval"
        else "",
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report = render_report(result)
    (out / "report.md").write_text(report)
    (out / "results.json").write_text(json.dumps(result, indent=2, default=float))
    written = []
    if not args.no_plots:
        from agemem_gym.harness.plots import write_plots

        written = write_plots(result, out / "plots")
    print(report)
    print(f"wrote {out / 'report.md'}, {out / 'results.json'} and {len(written)} plots in {out / 'plots'}")
    return 0


def _check(args: argparse.Namespace) -> dict[str, dict[str, object]]:
    """Validate the arguments before any model loads; returns each policy's keyword arguments."""
    from agemem_gym import policies
    from agemem_gym.error import InvalidConfig

    if args.episodes < 1:
        raise InvalidConfig(f"--episodes must be >= 1, got {args.episodes}")
    if args.num_envs < 1:
        raise InvalidConfig(f"--num-envs must be >= 1, got {args.num_envs}")
    for env_id in args.env:
        check_env_id(env_id)
    check_env_kwargs(args.env_kwargs)
    unknown = set(args.policy_kwargs) - set(args.policy)
    if unknown:
        raise InvalidConfig(f"--policy-kwargs names {sorted(unknown)}, which is not a --policy of this run")
    check_model_option(args.model, args.policy)
    takers = set(policies_with_model())
    policy_kwargs = {}
    for name in args.policy:
        kwargs = args.policy_kwargs.get(name, {})
        if not isinstance(kwargs, dict):
            raise InvalidConfig(f'--policy-kwargs takes {{"policy name": {{arguments}}}}; {name!r} maps to {kwargs!r}')
        policy_kwargs[name] = dict(kwargs)
        if args.model is not None and name in takers:
            policy_kwargs[name].setdefault("model", args.model)
        policies.check_arguments(name, policy_kwargs[name])
    return policy_kwargs
