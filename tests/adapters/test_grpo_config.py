"""The trainer's config from TOML, Python and the command line: unclipped objective, lr 0, precision."""

import argparse

import pytest

from agemem_gym.adapters.grpo.config import GRPOConfig, load_config
from agemem_gym.commands import train as train_command
from agemem_gym.error import InvalidConfig


def parse(*argv):
    parser = argparse.ArgumentParser()
    train_command.configure(parser)
    return train_command.overrides(parser.parse_args(list(argv)))


@pytest.mark.parametrize("text", ['"none"', '"None"', '"null"'])
def test_toml_clip_none_selects_the_unclipped_objective(tmp_path, text):
    toml = tmp_path / "run.toml"
    toml.write_text(f'preset = "cpu-smoke"\nclip = {text}\nclip_high = "none"\nlearning_rate = 0\n')
    cfg = load_config(toml)
    assert cfg.clip is None and cfg.clip_high is None
    assert cfg.learning_rate == 0.0


def test_python_overrides_keep_none():
    assert load_config("paper", clip=None).clip is None
    assert load_config("paper", clip="none").clip is None
    assert load_config("paper", learning_rate=0).learning_rate == 0
    assert GRPOConfig(clip="0.1").clip == 0.1  # text from a CLI or an env var
    assert load_config("paper").clip == 0.2  # a field left out keeps its value


def test_bad_clip_and_learning_rate_are_config_errors():
    with pytest.raises(InvalidConfig, match="clip must be a number or 'none'"):
        GRPOConfig(clip="unclipped")
    with pytest.raises(InvalidConfig, match="clip must be in"):
        GRPOConfig(clip=1.5)
    with pytest.raises(InvalidConfig, match="learning_rate"):
        GRPOConfig(learning_rate=-1e-5)
    with pytest.raises(InvalidConfig, match="precision"):
        GRPOConfig(precision="fp16")


def test_cli_clip_none_learning_rate_zero_and_precision():
    given = parse("--clip", "none", "--learning-rate", "0", "--precision", "bf16", "--steps", "3")
    assert given == {"clip": None, "learning_rate": 0.0, "precision": "bf16", "num_steps": 3}
    cfg = load_config("cpu-smoke", **given)
    assert (cfg.clip, cfg.learning_rate, cfg.precision, cfg.num_steps) == (None, 0.0, "bf16", 3)
    assert parse("--clip", "0.3") == {"clip": 0.3}


def test_cli_options_left_out_change_nothing():
    assert parse() == {}
    given = parse("--overwrite", "--record", "rec", "--record-every", "2", "--out", "o", "--env", "E", "--seed", "4")
    assert given == {
        "overwrite": True,
        "record_dir": "rec",
        "record_every": 2,
        "output_dir": "o",
        "env_id": "E",
        "seed": 4,
    }
    assert load_config("cpu-smoke", **parse()) == load_config("cpu-smoke")


def test_env_backend_from_python_toml_and_the_command_line(tmp_path):
    assert load_config("cpu-smoke").rollout_env_backend == "sync"
    assert load_config("cpu-smoke", env_backend="ray").rollout_env_backend == "ray"
    assert load_config("cpu-smoke", async_envs=True).rollout_env_backend == "async"  # the older spelling
    toml = tmp_path / "run.toml"
    toml.write_text('preset = "cpu-smoke"\nenv_backend = "ray"\n')
    assert load_config(toml).env_backend == "ray"
    assert parse("--env-backend", "ray") == {"env_backend": "ray"}
    with pytest.raises(InvalidConfig, match="env_backend must be one of sync, async, ray, got 'threads'"):
        load_config("cpu-smoke", env_backend="threads")
    with pytest.raises(InvalidConfig, match="async_envs"):
        load_config("cpu-smoke", async_envs=True, env_backend="ray")
    with pytest.raises(SystemExit):
        parse("--env-backend", "threads")


def test_default_threads_divide_the_cores_among_the_processes_sharing_them():
    from agemem_gym.adapters.grpo.launch import default_threads

    assert default_threads(16, {}, 0.0) == 16
    assert default_threads(16, {"LOCAL_WORLD_SIZE": "4"}, 0.0) == 4  # four ranks of one launch
    assert default_threads(16, {"LOCAL_WORLD_SIZE": "2", "AGEMEM_JOBS": "3"}, 0.0) == 2
    assert default_threads(2, {"AGEMEM_JOBS": "4"}, 0.0) == 1  # never 0
    assert default_threads(8, {}, 5.6) == 2  # the load average leaves two cores free
    assert default_threads(2, {}, 7.0) == 1
    assert default_threads() >= 1
