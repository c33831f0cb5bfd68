"""Every listed user mistake ends in one line on stderr and exit status 2 (issue 16, item 4).

Each case runs the real command as a subprocess, so a traceback printed by the interpreter
(not only one raised into :func:`agemem_gym.cli.main`) would fail the test.
"""

import os
import subprocess
import sys

import pytest

HOTPOT = "AgeMem/HotpotQA-v0"


def agemem(*argv: str, env: dict[str, str] | None = None, cwd: str | None = None) -> subprocess.CompletedProcess:
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    environ = {**os.environ, "PYTHONPATH": root}
    environ.pop("AGEMEM_DEBUG", None)
    environ.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "agemem_gym", *argv], capture_output=True, text=True, env=environ, cwd=cwd, timeout=120
    )


def assert_one_line_error(proc: subprocess.CompletedProcess, *needles: str) -> str:
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("agemem: error: ")
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def write_toml(tmp_path, body: str) -> str:
    path = tmp_path / "train.toml"
    path.write_text('preset = "cpu-smoke"\n' + body + "\n")
    return str(path)


@pytest.mark.parametrize(
    ("argv", "needles"),
    [
        (["run", "AgeMem/HotPotQA-v0", "--episodes", "1"], ["Did you mean 'AgeMem/HotpotQA-v0'"]),
        (["eval", "--env", "AgeMem/Nope-v0", "--policy", "oracle", "--episodes", "1"], ["'AgeMem/Nope-v0'"]),
        (
            ["run", HOTPOT, "--episodes", "1", "--env-kwargs", '{"num_distractors": "three"}'],
            ["num_distractors must be an integer", "'three'"],
        ),
        (
            ["eval", "--env", HOTPOT, "--policy", "oracle", "--env-kwargs", '{"num_distractors": "three"}'],
            ["num_distractors must be an integer"],
        ),
        (
            ["run", HOTPOT, "--episodes", "1", "--policy-kwargs", '{"foo": 1}'],
            ["takes no argument 'foo'", "accepts: seed, top_k"],
        ),
        (
            ["eval", "--env", HOTPOT, "--policy", "rag", "--policy-kwargs", '{"rag": {"foo": 1}}'],
            ["takes no argument 'foo'"],
        ),
        (
            ["run", HOTPOT, "--episodes", "1", "--policy", "rag", "--model", "smollm2"],
            ["--model applies", "mem0-style"],
        ),
        (["eval", "--env", HOTPOT, "--policy", "rag", "--model", "smollm2"], ["--model applies", "hf"]),
        (["run", HOTPOT, "--episodes", "1", "--policy", "hf", "--model", "smolm2"], ["Did you mean 'smollm2'"]),
        (
            ["run", HOTPOT, "--episodes", "1", "--policy", "hf", "--model", "/no/such/model"],
            ["no model at /no/such/model"],
        ),
        (["train", "--model", "smolm2"], ["Did you mean 'smollm2'"]),
        (["train", "--config", "cpu-smok"], ["Did you mean 'cpu-smoke'"]),
        (["run", HOTPOT, "--episodes", "notanumber"], ["--episodes"]),
        (["run"], ["env_id"]),
    ],
)
def test_mistake_is_one_line_and_exit_2(argv, needles, tmp_path):
    assert_one_line_error(agemem(*argv, cwd=str(tmp_path)), *needles)


def test_bad_env_kwargs_with_the_hf_policy_fail_before_the_model_loads(tmp_path):
    # loading even the tiny model takes torch and seconds; the config error must come first
    proc = agemem("run", HOTPOT, "--policy", "hf", "--model", "tiny", "--env-kwargs", '{"num_distractors": "three"}')
    assert_one_line_error(proc, "num_distractors must be an integer")
    proc = agemem("run", HOTPOT, "--policy", "hf", "--model", "tiny", "--env-kwargs", '{"num_distractor": 3}')
    assert_one_line_error(proc, "Did you mean 'num_distractors'")


@pytest.mark.parametrize(
    ("body", "needles"),
    [
        ('num_steps = "three"', ["num_steps must be an integer", "train.toml"]),
        ('temperature = "hot"', ["temperature must be a number", "train.toml"]),
        ("[env_kwargs]\nnum_distractors = true", ["num_distractors must be an integer"]),
    ],
)
def test_bad_training_toml_is_rejected_before_torch_loads(tmp_path, body, needles):
    # -X importtime lists every import on stderr; run it in-process through the CLI instead
    code = (
        "import sys\nfrom agemem_gym.cli import main\n"
        f"status = main(['train', '--config', {write_toml(tmp_path, body)!r}, '--output-dir', {str(tmp_path)!r}])\n"
        "print('torch' in sys.modules)\nsys.exit(status)"
    )
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": root},
    )
    assert_one_line_error(proc, *needles)
    assert proc.stdout.strip() == "False", "torch was imported before the config was rejected"


def test_debug_flag_and_env_var_show_the_traceback():
    for proc in (
        agemem("--debug", "run", "AgeMem/HotPotQA-v0"),
        agemem("run", "AgeMem/HotPotQA-v0", "--debug"),
        agemem("run", "AgeMem/HotPotQA-v0", env={"AGEMEM_DEBUG": "1"}),
    ):
        assert proc.returncode == 1
        assert "Traceback (most recent call last)" in proc.stderr
        assert "UnknownName" in proc.stderr


def test_keyboard_interrupt_is_one_line_and_exit_130(monkeypatch, capsys):
    from agemem_gym import cli
    from agemem_gym.commands import list_envs

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(list_envs, "main", interrupted)
    monkeypatch.delenv("AGEMEM_DEBUG", raising=False)
    assert cli.main(["list"]) == 130
    assert capsys.readouterr().err.strip().splitlines() == ["agemem: interrupted"]
    with pytest.raises(KeyboardInterrupt):
        cli.main(["--debug", "list"])


@pytest.mark.parametrize(
    ("argv", "needles", "absent"),
    [
        (["train", "--clip", "banana"], ["--clip", "expected a number in (0, 1) or 'none'", "'banana'"], ["_clip"]),
        (["train", "--learning-rate", "-1"], ["learning_rate must be >= 0, got -1.0"], ["kl_beta"]),
        (["train", "--learning-rate", "nan"], ["learning_rate must be >= 0, got nan"], ["kl_beta"]),
        (["run", HOTPOT, "--policy-kwargs", "[1]"], ['e.g. \'{"top_k": 3}\'', "'[1]'"], ["num_distractors"]),
        (
            ["eval", "--env", HOTPOT, "--policy", "rag", "--policy-kwargs", "[1]"],
            ['e.g. \'{"rag": {"top_k": 3}}\''],
            ["num_distractors"],
        ),
        (["run", HOTPOT, "--env-kwargs", "[1]"], ['e.g. \'{"num_distractors": 3}\''], []),
    ],
)
def test_messages_name_the_option_and_what_it_takes(argv, needles, absent, tmp_path):
    """Issue 29, item 12: no internal names, no example of another option's value."""
    line = assert_one_line_error(agemem(*argv, cwd=str(tmp_path)), *needles)
    for needle in absent:
        assert needle not in line, line
