"""The run-folder guard: a used folder is resumed or overwritten on request, never silently reused."""

import json
import subprocess
import sys
import zipfile

import pytest

from agemem_gym.adapters.grpo.config import load_config
from agemem_gym.adapters.grpo.run_folder import check_run_folder, clear_run, holds_run, settings_diff
from agemem_gym.error import InvalidConfig


def used_folder(tmp_path, step=5, **changes):
    """A folder as a finished cpu-smoke run leaves it (config, metrics, a checkpoint)."""
    config = load_config("cpu-smoke", output_dir=str(tmp_path / "run"), **changes)
    folder = tmp_path / "run"
    checkpoint = folder / f"checkpoint-{step:06d}"
    checkpoint.mkdir(parents=True)
    state = {"step": step, "numpy_rng": {}, "config": config.to_dict()}
    (checkpoint / "trainer_state.json").write_text(json.dumps(state))
    for name in ("optimizer.pt", "rng.pt"):  # torch.save writes zip archives
        with zipfile.ZipFile(checkpoint / name, "w") as archive:
            archive.writestr("data.pkl", b"")
    (folder / "config.json").write_text(json.dumps(config.to_dict()))
    (folder / "metrics.csv").write_text("step\n0\n")
    (folder / "notes.txt").write_text("mine")
    return config


def test_a_fresh_folder_starts_and_a_used_one_needs_a_flag(tmp_path):
    config = load_config("cpu-smoke", output_dir=str(tmp_path / "run"), resume=False)
    assert not holds_run(tmp_path / "run") and check_run_folder(config) is False
    used_folder(tmp_path)
    with pytest.raises(InvalidConfig, match="--resume .* --overwrite"):
        check_run_folder(config)
    assert check_run_folder(config.replace(resume=True)) is True
    assert check_run_folder(config.replace(overwrite=True)) is False
    assert check_run_folder(config.replace(resume=True, overwrite=True)) is False  # overwrite wins


def test_other_settings_are_named_and_refused_even_with_resume(tmp_path):
    config = used_folder(tmp_path)
    for resume in (False, True):
        with pytest.raises(InvalidConfig, match=r"seed: 0 -> 1") as err:
            check_run_folder(config.replace(seed=1, resume=resume))
        assert "\n" not in str(err.value) and "--overwrite" in str(err.value)
    diff = settings_diff(config.to_dict(), config.replace(seed=1, learning_rate=0.5, num_steps=99, save_every=2))
    assert [d.split(":")[0] for d in diff] == ["learning_rate", "seed"]  # bookkeeping fields may change


def test_resume_may_grow_the_steps_but_not_shrink_below_the_checkpoint(tmp_path):
    config = used_folder(tmp_path, step=5)
    assert check_run_folder(config.replace(resume=True, num_steps=20)) is True
    assert check_run_folder(config.replace(resume=True, num_steps=6)) is True  # a finished run: nothing to do
    with pytest.raises(InvalidConfig, match="pass --steps 6"):
        check_run_folder(config.replace(resume=True, num_steps=3))


def test_overwrite_clears_only_the_run_files(tmp_path):
    config = used_folder(tmp_path, record_dir=str(tmp_path / "rec"))
    (tmp_path / "rec" / "rank0").mkdir(parents=True)
    (tmp_path / "rec" / "rank0" / "env0-00000-t.jsonl").write_text("{}")
    (tmp_path / "run" / "tensorboard").mkdir()
    clear_run(config)
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["notes.txt"]
    assert not list((tmp_path / "rec").glob("rank*/*.jsonl"))


def test_recording_into_a_used_folder_names_the_flag(tmp_path):
    (tmp_path / "rec" / "rank0").mkdir(parents=True)
    (tmp_path / "rec" / "rank0" / "env0-00000-t.jsonl").write_text("{}")
    config = load_config("cpu-smoke", output_dir=str(tmp_path / "new"), record_dir=str(tmp_path / "rec"))
    with pytest.raises(InvalidConfig, match="--record folder .* --overwrite"):
        check_run_folder(config)
    assert check_run_folder(config.replace(overwrite=True)) is False


def test_cli_refuses_a_changed_setting_in_one_line_before_loading_torch(tmp_path):
    config = used_folder(tmp_path)
    cmd = [sys.executable, "-m", "agemem_gym", "train", "--config", "cpu-smoke", "--output-dir", config.output_dir]
    code = "import sys, runpy; sys.argv = sys.argv[1:]; runpy.run_module('agemem_gym', run_name='__main__')"
    probe = f"import atexit, sys; atexit.register(lambda: print('torch' in sys.modules, file=sys.stderr)); {code}"
    proc = subprocess.run([sys.executable, "-c", probe, *cmd[2:], "--seed", "1"], capture_output=True, text=True)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and lines[0].startswith("agemem: error:") and "seed: 0 -> 1" in lines[0]
    assert lines[1:] == ["False"]  # refused before torch was imported
    assert json.loads((tmp_path / "run" / "config.json").read_text())["seed"] == 0  # untouched
    proc = subprocess.run([*cmd, "--resume", "--overwrite"], capture_output=True, text=True)
    assert proc.returncode == 2 and "not allowed with argument" in proc.stderr


@pytest.mark.parametrize("made", [False, True])
def test_cli_resume_of_a_folder_without_a_run_is_refused_not_started_from_step_0(tmp_path, made):
    """Issue 29, item 7: a mistyped --output-dir with --resume trained from step 0 and exited 0."""
    folder = tmp_path / "runs" / "typo"
    if made:
        folder.mkdir(parents=True)
    cmd = [sys.executable, "-m", "agemem_gym", "train", "--output-dir", str(folder), "--resume", "--steps", "1"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert "--resume" in lines[0] and "holds no run to continue" in lines[0] and str(folder) in lines[0]
    assert folder.exists() == made and (not made or not any(folder.iterdir()))
