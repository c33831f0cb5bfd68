"""Every public argument of an env or policy is checked at the boundary from one declaration: its type hint.

A value of the wrong type or out of range raises ``InvalidConfig`` naming the argument, the
type it takes and an example; on the command line that is one ``agemem: error:`` line and
exit status 2, before any model loads or episode runs.
"""

import inspect
import json

import gymnasium as gym
import pytest

import agemem_gym  # noqa: F401
from agemem_gym import policies
from agemem_gym.adapters.grpo.config import load_config
from agemem_gym.cli import main
from agemem_gym.error import Error, InvalidConfig
from agemem_gym.registration import ENV_SPECS, check_env_arguments
from agemem_gym.typecheck import _hints, fits

HOTPOT = "AgeMem/HotpotQA-v0"


def one_line_error(capsys, *argv):
    try:
        status = main([str(a) for a in argv])
    except SystemExit as exc:  # argparse's own errors exit from the parser
        status = exc.code
    err = capsys.readouterr().err
    assert status == 2, err
    assert err.startswith("agemem: error: ") and err.count("\n") == 1, err
    return err


@pytest.mark.parametrize(
    ("env_kwargs", "needles"),
    [
        ({"data_path": 7}, ["data_path", "a string or a path", 'e.g. {"data_path":']),
        ({"distractors": 5}, ["distractors", "DistractorSource", "generate()"]),
        ({"context_filter": 3}, ["context_filter", "ContextFilter", "select()"]),
        ({"render_mode": 5}, ["render_mode", '"ansi" or null', 'e.g. {"render_mode": "ansi"}']),
        ({"summarizer": "x"}, ["summarizer", "Summarizer"]),
        ({"num_tasks": "2"}, ["num_tasks", "an integer"]),
    ],
)
def test_env_kwargs_of_the_wrong_type_are_one_line_errors(capsys, tmp_path, env_kwargs, needles):
    err = one_line_error(
        capsys, "run", HOTPOT, "--episodes", 1, "--no-progress", "--env-kwargs", json.dumps(env_kwargs)
    )
    for needle in needles:
        assert needle in err


def test_deeply_nested_env_kwargs_are_one_line_errors(capsys):
    deep = '{"a":' * 5000 + "1" + "}" * 5000
    assert "nested too deeply" in one_line_error(capsys, "run", HOTPOT, "--env-kwargs", deep)


@pytest.mark.parametrize(
    ("policy", "kwargs", "needles"),
    [
        ("rag", {"top_k": "x"}, ["top_k must be an integer >= 1, got 'x'", 'e.g. {"top_k": 3}']),
        ("rag", {"top_k": -3}, ["top_k must be an integer >= 1, got -3"]),
        ("openai:m", {"timeout": "x"}, ["timeout must be a number > 0", 'e.g. {"timeout": 120.0}']),
        ("openai:m", {"temperature": "hot"}, ["temperature must be a number >= 0"]),
        ("openai:m", {"extra_body": 5}, ["extra_body must be an object"]),
        ("openai:m", {"stop": 5}, ["stop must be a list of strings or a string"]),
        ("hf", {"temperature": "hot"}, ["temperature must be a number >= 0"]),
        ("random", {"p_answer": 2}, ["p_answer must be a number >= 0 and <= 1"]),
    ],
)
def test_policy_kwargs_of_the_wrong_type_are_one_line_errors(capsys, policy, kwargs, needles):
    argv = ["run", HOTPOT, "--episodes", 1, "--no-progress", "--policy", policy, "--policy-kwargs", json.dumps(kwargs)]
    if policy.startswith("openai:"):
        argv += ["--base-url", "http://127.0.0.1:9/v1"]  # never reached: the check comes first
    err = one_line_error(capsys, *argv)
    for needle in needles:
        assert needle in err


def test_direct_construction_checks_the_same_declaration():
    with pytest.raises(InvalidConfig, match="top_k must be an integer >= 1"):
        policies.RAGPolicy(top_k=-3)
    with pytest.raises(InvalidConfig, match="data_path must be"):
        gym.make(HOTPOT, data_path=7)


@pytest.mark.parametrize("command", ["run", "eval", "train"])
def test_a_negative_seed_is_a_one_line_error(capsys, tmp_path, command):
    argv = {
        "run": ["run", HOTPOT],
        "eval": ["eval", "--env", HOTPOT, "--out", tmp_path / "ev"],
        "train": ["train", "--config", "cpu-smoke", "--output-dir", tmp_path / "tr"],
    }[command]
    assert "--seed: expected an integer >= 0" in one_line_error(capsys, *argv, "--seed", -1)


def test_toml_env_kwargs_of_the_wrong_type(capsys, tmp_path):
    path = tmp_path / "t.toml"
    path.write_text('preset = "cpu-smoke"\nenv_kwargs = "x"\n')
    with pytest.raises(InvalidConfig, match="env_kwargs must be a table"):
        load_config(path)
    path.write_text('preset = ["cpu-smoke"]\n')
    with pytest.raises(Error, match="preset"):
        load_config(path)
    err = one_line_error(capsys, "train", "--config", path.with_name("u.toml"), "--output-dir", tmp_path / "o")
    assert "u.toml" in err


class _Alien:
    """A value no declared argument accepts."""


def _env_classes():
    import importlib

    seen = {}
    for spec in ENV_SPECS:
        module, _, attr = spec.entry_point.partition(":")
        try:
            seen.setdefault(spec.entry_point, (spec.id, getattr(importlib.import_module(module), attr)))
        except ImportError:  # an optional extra that is not installed
            continue
    return list(seen.values())


def _declared(target):
    for cls in target.__mro__ if isinstance(target, type) else (target,):
        if cls is object or "__init__" not in vars(cls) and isinstance(target, type):
            continue
        init = vars(cls)["__init__"] if isinstance(target, type) else target
        params = inspect.signature(init).parameters
        for name, hint in _hints(init).items():
            if name in params and name not in ("self", "return"):
                yield name, hint, params[name].default


@pytest.mark.parametrize(("env_id", "cls"), _env_classes(), ids=lambda v: v if isinstance(v, str) else "")
def test_every_env_argument_is_declared_and_checked(env_id, cls):
    for name, hint, default in _declared(cls):
        if default is not inspect.Parameter.empty:
            assert fits(default, hint), f"{cls.__name__}.{name}: default {default!r} does not fit {hint}"
        if not fits(_Alien(), hint):
            with pytest.raises(InvalidConfig, match=rf"argument {name} must be .*, got .*; (e\.g\.|it is a Python)"):
                check_env_arguments(env_id, {name: _Alien()})


@pytest.mark.parametrize("name", policies.names())
def test_every_policy_argument_is_declared_and_checked(name):
    """Checked by ``policies.make`` before anything loads, for every argument a policy lists."""
    from agemem_gym.policies import _FORWARDS_TO, POLICIES, _resolve

    targets = [_resolve(POLICIES[name])] + ([_resolve(_FORWARDS_TO[name])] if name in _FORWARDS_TO else [])
    listed = set(policies.arguments(name))
    for target in targets:
        for arg, hint, default in _declared(target):
            if arg not in listed:
                continue
            if default is not inspect.Parameter.empty:
                assert fits(default, hint), f"{name}.{arg}: default {default!r} does not fit {hint}"
            if not fits(_Alien(), hint):
                with pytest.raises(InvalidConfig, match=rf"policy '{name}': argument {arg} must be"):
                    policies.check_arguments(name, {arg: _Alien()})


def test_eval_checks_env_kwargs_against_the_envs_of_its_suites(capsys, tmp_path):
    argv = ["eval", "--suite", "synthetic", "--policy", "rag", "--out", tmp_path / "ev"]
    err = one_line_error(capsys, *argv, "--env-kwargs", '{"distractors": 5}')
    assert "argument distractors must be a DistractorSource" in err
    assert not (tmp_path / "ev").exists()


def test_the_team_env_checks_its_arguments():
    pytest.importorskip("pettingzoo")
    from agemem_gym.adapters.pettingzoo import make_parallel

    with pytest.raises(InvalidConfig, match=r"argument team_weight must be a number, got 'x'"):
        make_parallel("TeamHotpotQA-v0", team_weight="x")


def test_the_checker_accepts_what_callers_pass_and_refuses_nan():
    from pathlib import Path

    import numpy as np

    from agemem_gym.typecheck import NonNegativeFloat, PositiveInt

    assert fits(np.int64(3), PositiveInt) and fits(Path("models/x"), str) and fits(np.float32(0.5), float)
    assert not fits(True, int) and not fits(float("nan"), NonNegativeFloat) and not fits("ab", list[str])
    policies.check_arguments("hf", {"model": Path("models/x"), "seed": np.int64(1)})


@pytest.mark.parametrize("key", ["num_distractors", "judge"])
def test_a_large_wrong_value_is_shown_cut_in_a_short_line(capsys, key):
    value = json.dumps({key: json.loads('{"a":' * 900 + "1" + "}" * 900)})
    err = one_line_error(capsys, "run", HOTPOT, "--episodes", 1, "--no-progress", "--env-kwargs", value)
    assert f"{key} must be" in err and "..." in err and len(err) < 400, err
