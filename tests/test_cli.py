import json
import subprocess
import sys

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
