"""Determinism: every deterministic id, many seeds, two runs each, byte-identical trajectories.

    python benchmarks/check_determinism.py --seeds 100 --json results/check_determinism.json
    python benchmarks/check_determinism.py --ids AgeMem/HotpotQA-v0 --seeds 10
    python benchmarks/check_determinism.py --seeds 100 --save-digests before.json      # on the old revision
    python benchmarks/check_determinism.py --seeds 100 --compare before.json --ignore-info turn

``--compare`` also checks a refactor: the digests must equal those another revision saved
with ``--save-digests``; ``--ignore-info KEY`` leaves an ``info`` key out of every digest
(for a key the newer revision added on purpose).

The two runs happen in two separate Python processes with different ``PYTHONHASHSEED``
values, so anything that leaks set/dict-of-str iteration order, ``id()``, the wall clock or
``uuid4`` into the env's state shows up. One env per id plays seeds ``0..N-1`` in order, so
state carried across ``reset`` would show up too. Each episode is driven by the seeded random policy
(well-formed and malformed turns) with every third turn from the grammar-aware fuzzer of
``fuzz_actions.py`` (unknown ids, broken JSON, huge strings...), at most ``--max-steps`` steps;
actions depend on the observations, so a divergence anywhere changes everything after it.
The trajectory (every observation, reward, terminated, truncated and info, in order) is
serialised to canonical JSON and hashed with SHA-256; the two processes must give the same
digest for every (id, seed).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from _common import format_table, run_metadata, write_json

HERE = Path(__file__).resolve().parent


def _canonical(value: Any) -> Any:
    return json.dumps(value, sort_keys=True, ensure_ascii=True, default=repr, allow_nan=True)


def _without(info: dict[str, Any], ignore: tuple[str, ...]) -> dict[str, Any]:
    return {k: v for k, v in info.items() if k not in ignore} if ignore else info


def episode_digest(env: Any, seed: int, max_steps: int, ignore: tuple[str, ...] = ()) -> tuple[str, int]:
    """SHA-256 of one seeded episode's full trajectory, and its number of steps."""
    from agemem_gym.policies import RandomPolicy
    from agemem_gym.tools import turn_text

    sys.path.insert(0, str(HERE))
    from fuzz_actions import TurnFuzzer

    policy = RandomPolicy(seed=seed)
    fuzzer = TurnFuzzer(seed, interactive=bool(getattr(env.unwrapped, "interactive", False)))
    digest = hashlib.sha256()
    obs, info = env.reset(seed=seed)
    digest.update(_canonical([obs, _without(info, ignore)]).encode())
    steps = 0
    for steps in range(1, max_steps + 1):
        if steps % 3 == 0:
            acts = info.get("valid_actions")
            while True:
                _, action, _ = fuzzer.turn(env.unwrapped.ltm.ids(), list(acts) if acts else None)
                # an action holding an object() differs between processes by itself: its text (which
                # the env faithfully puts in the context) carries the object's address
                if " at 0x" not in turn_text(action):
                    break
        else:
            action = policy.act(obs, info)
        obs, reward, term, trunc, info = env.step(action)
        digest.update(_canonical([obs, reward, term, trunc, _without(info, ignore)]).encode())
        if term or trunc:
            break
    return digest.hexdigest(), steps


def digests(ids: list[str], seeds: int, max_steps: int, ignore: tuple[str, ...] = ()) -> dict[str, Any]:
    """Digests of seeds ``0..seeds-1`` per id; one env per id plays them in order (engines start once)."""
    import gymnasium as gym

    import agemem_gym  # noqa: F401

    out: dict[str, Any] = {}
    for env_id in ids:
        t0 = time.perf_counter()
        env = gym.make(env_id, privileged_info=True)
        try:
            runs = {str(s): episode_digest(env, s, max_steps, ignore) for s in range(seeds)}
        finally:
            env.close()
        out[env_id] = {"runs": runs, "seconds": time.perf_counter() - t0}
    return out


def _deterministic_ids() -> list[str]:
    sys.path.insert(0, str(HERE.parent))
    from agemem_gym.registration import ENV_SPECS
    from tests.envs.utils import TESTABLE_IDS

    return [s.id for s in ENV_SPECS if not s.nondeterministic and s.id in TESTABLE_IDS]


def run_twice(
    ids: list[str], seeds: int, max_steps: int, ignore: tuple[str, ...] = ()
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Compute the digests in two processes with different hash seeds, in parallel."""
    procs = []
    for hash_seed in ("1", "2"):
        env = dict(os.environ, PYTHONHASHSEED=hash_seed, OMP_NUM_THREADS="1")
        env["PYTHONPATH"] = os.pathsep.join([str(HERE.parent), env.get("PYTHONPATH", "")])
        cmd = [sys.executable, str(HERE / "check_determinism.py"), "--worker", "--seeds", str(seeds)]
        cmd += ["--max-steps", str(max_steps), "--ids", *ids]
        if ignore:
            cmd += ["--ignore-info", *ignore]
        procs.append(subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True))
    outs = []
    for p in procs:
        stdout, _ = p.communicate()
        if p.returncode:
            raise RuntimeError(f"a worker failed with exit code {p.returncode}")
        outs.append(json.loads(stdout.strip().splitlines()[-1]))
    return outs[0], outs[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ids", nargs="+", default=None, help="default: every deterministic id that can run here")
    parser.add_argument("--seeds", type=int, default=100)
    parser.add_argument("--max-steps", type=int, default=60)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--json", default=None)
    parser.add_argument("--save-digests", default=None, help="write every (id, seed) digest to this JSON file")
    parser.add_argument("--compare", default=None, help="digests saved by --save-digests that must match")
    parser.add_argument("--ignore-info", nargs="+", default=[], help="info keys left out of the digests")
    args = parser.parse_args(argv)
    ids = args.ids or _deterministic_ids()
    ignore = tuple(args.ignore_info)
    if args.worker:
        print(json.dumps(digests(ids, args.seeds, args.max_steps, ignore)))
        return 0

    t0 = time.perf_counter()
    a, b = run_twice(ids, args.seeds, args.max_steps, ignore)
    reference = json.loads(Path(args.compare).read_text()) if args.compare else None
    rows, mismatches, changed = [], [], []
    for env_id in ids:
        ra, rb = a[env_id]["runs"], b[env_id]["runs"]
        bad = [s for s in ra if ra[s] != rb[s]]
        mismatches += [f"{env_id} seed {s}" for s in bad]
        steps = sum(v[1] for v in ra.values())
        row = [env_id, len(ra), steps, len(bad), a[env_id]["seconds"]]
        if reference is not None:
            old = reference.get(env_id, {}).get("runs", {})
            moved = [s for s in ra if s not in old or old[s][0] != ra[s][0]]
            changed += [f"{env_id} seed {s}" for s in moved]
            row.insert(4, len(moved))
        rows.append(row)
    headers = ["env id", "seeds", "steps per run", "mismatching seeds", "seconds per run"]
    if reference is not None:
        headers.insert(4, "differ from --compare")
    print(format_table(headers, rows))
    total = sum(r[1] for r in rows)
    print(
        f"\n{total} episodes x 2 processes (PYTHONHASHSEED 1 and 2) over {len(ids)} ids in "
        f"{time.perf_counter() - t0:.0f} s: {len(mismatches)} mismatching trajectories"
    )
    for m in mismatches[:20]:
        print("MISMATCH", m)
    if reference is not None:
        print(f"{len(changed)} trajectories differ from {args.compare}")
        for m in changed[:20]:
            print("CHANGED", m)
    if args.save_digests:
        Path(args.save_digests).write_text(json.dumps(a))
    result = {"meta": run_metadata(), "args": vars(args), "rows": rows, "mismatches": mismatches, "changed": changed}
    write_json(args.json, result)
    return 1 if mismatches or changed else 0


if __name__ == "__main__":
    raise SystemExit(main())
