import json
import subprocess
import sys

import pytest

from agemem_gym.cli import main


def test_list(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "AgeMem/HotpotQA-v0" in out and "oracle" in out


def test_run_prints_tables_and_writes_json(tmp_path, capsys):
    out_file = tmp_path / "run.json"
    code = main(
        [
            "run",
            "AgeMem/HotpotQA-v0",
            "--policy",
            "store-all",
            "--episodes",
            "3",
            "--seed",
            "1",
            "--env-kwargs",
            '{"num_distractors": 2}',
            "--json",
            str(out_file),
            "--no-progress",
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    for heading in ("Episode metrics", "Tool calls per episode", "Reward components", "memory quality (MQ)"):
        assert heading in out
    data = json.loads(out_file.read_text())
    assert data["summary"]["episodes"] == 3 and len(data["episodes"]) == 3
    assert data["summary"]["tool_calls"]["Add_memory"] > 0
    assert [e["seed"] for e in data["episodes"]] == [1, 2, 3]


def test_bad_input_exits_2_with_a_message(capsys):
    assert main(["run", "AgeMem/HotpotQA-v0", "--policy", "orcle", "--episodes", "1"]) == 2
    assert "Did you mean 'oracle'" in capsys.readouterr().err
    assert (
        main(["run", "AgeMem/HotpotQA-v0", "--env-kwargs", '{"num_distractor": 1}', "--episodes", "1", "--no-progress"])
        == 2
    )


def test_console_script_and_module_entry_point():
    proc = subprocess.run([sys.executable, "-m", "agemem_gym", "list"], capture_output=True, text=True, check=True)
    assert "AgeMem/HotpotQA-v0" in proc.stdout


def _help_lines(command: str) -> dict[str, str]:
    """``--flag`` -> its help text in the parser of ``agemem COMMAND``."""
    from agemem_gym.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices[command]
    return {opt: (a.help or "") for a in sub._actions for opt in a.option_strings}


def test_train_help_lists_every_preset(capsys):
    from agemem_gym.adapters.grpo.config import PRESETS

    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    for preset in PRESETS:
        assert preset in out


def test_options_have_help_text():
    run, train = _help_lines("run"), _help_lines("train")
    for flag in ("--episodes", "--seed", "--model", "--policy-kwargs", "--env-kwargs"):
        assert run[flag], flag
    for flag in ("--no-progress", "--seed", "--config", "--debug"):
        assert train[flag], flag


def test_list_shows_team_variants_and_presets(capsys):
    from agemem_gym.adapters.grpo.config import PRESETS

    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for preset in PRESETS:
        assert f"  {preset}\n" in out
    try:
        from agemem_gym.adapters.pettingzoo import VARIANTS
    except ImportError:  # DependencyNotInstalled is an ImportError
        assert "needs PettingZoo" in out
    else:
        for name in VARIANTS:
            assert f"  {name}\n" in out


def test_list_without_pettingzoo_says_what_to_install(monkeypatch, capsys):
    import builtins

    real_import = builtins.__import__

    def no_pettingzoo(name, *args, **kwargs):
        if name.startswith("agemem_gym.adapters.pettingzoo") or name.startswith("pettingzoo"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_pettingzoo)
    monkeypatch.delitem(sys.modules, "agemem_gym.adapters.pettingzoo", raising=False)
    assert main(["list"]) == 0
    assert 'pip install "agemem-gym[pettingzoo]"' in capsys.readouterr().out
