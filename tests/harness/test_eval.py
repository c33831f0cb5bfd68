import json

import pytest

from agemem_gym import policies
from agemem_gym.cli import main
from agemem_gym.error import InvalidConfig, UnknownName
from agemem_gym.evaluation import run_episodes
from agemem_gym.harness import evaluate_suite, resolve_suites, run_panel
from agemem_gym.harness.report import render_report

HOTPOT = "AgeMem/HotpotQA-NoDistractors-v0"


@pytest.mark.parametrize("policy", ["rag", "no-memory"])
def test_panel_results_do_not_depend_on_the_number_of_envs(policy):
    one = run_panel(HOTPOT, lambda: policies.make(policy), episodes=4, num_envs=1)
    three = run_panel(HOTPOT, lambda: policies.make(policy), episodes=4, num_envs=3)
    assert one == three
    assert [r.seed for r in one] == [0, 1, 2, 3]
    assert len({r.task_id for r in one}) == 4


def test_agemem_run_and_the_harness_play_the_same_episodes():
    """A random policy is reseeded per episode by both runners, so results match one for one."""
    one_env = run_episodes(HOTPOT, policies.make("random"), episodes=3, seed=5)
    panel = run_panel(HOTPOT, lambda: policies.make("random"), episodes=3, seed=5, num_envs=2)
    assert one_env == panel
    assert len({r.invalid_calls for r in one_env} | {r.turns for r in one_env}) > 1  # not a constant policy


def test_async_vector_env_gives_the_same_panel():
    sync = run_panel("AgeMem/BabyAI-v0", lambda: policies.make("no-memory"), episodes=3, num_envs=1)
    async_ = run_panel(
        "AgeMem/BabyAI-v0", lambda: policies.make("no-memory"), episodes=3, num_envs=2, vector_mode="async"
    )
    assert sync == async_


def test_run_panel_rejects_bad_arguments():
    with pytest.raises(InvalidConfig, match="episodes"):
        run_panel(HOTPOT, lambda: policies.make("rag"), episodes=0)
    with pytest.raises(InvalidConfig, match="vector mode"):
        run_panel(HOTPOT, lambda: policies.make("rag"), episodes=1, vector_mode="threads")


def test_evaluate_suite_report_has_the_paper_tables():
    result = evaluate_suite(
        ["no-memory", "oracle"], suites=[], env_ids=[HOTPOT], episodes=3, num_envs=2, progress=False
    )
    label = "HotpotQA-NoDistractors"
    assert result["scores"][label]["oracle"] == pytest.approx(1.0)
    assert result["scores"][label]["no-memory"] < 1.0
    assert result["config"]["seeds"] == [0, 1, 2]
    assert result["meta"]["agemem_gym"] and result["meta"]["git_revision"]
    assert result["benchmarks"][0]["version"] == 0
    report = render_report(result)
    for heading in ("Table 2", "Fig. 2", "Fig. 3", "Table 3", "judge: answers `f1`"):
        assert heading in report
    assert "| oracle | 100.00 | 100.00 |" in report
    json.dumps(result)  # serialisable


def test_eval_command_writes_report_json_and_plots(tmp_path, capsys):
    out = tmp_path / "ev"
    argv = ["eval", "--env", "AgeMem/Probe-Recall-v0", "--policy", "no-memory", "--policy", "oracle"]
    assert main([*argv, "--episodes", "2", "--out", str(out), "--no-progress"]) == 0
    assert (out / "report.md").read_text().startswith("# agemem eval report")
    payload = json.loads((out / "results.json").read_text())
    assert payload["config"]["policies"] == ["no-memory", "oracle"]
    pngs = sorted(p.name for p in (out / "plots").iterdir())
    assert "table2.png" in pngs and "tool_use.png" in pngs
    assert all((out / "plots" / p).read_bytes()[:4] == b"\x89PNG" for p in pngs)


def test_eval_command_names_bad_input(tmp_path, capsys):
    assert main(["eval", "--env", HOTPOT, "--policy", "nope", "--out", str(tmp_path)]) == 2
    assert "nope" in capsys.readouterr().err
    assert main(["eval", "--env", HOTPOT, "--policy", "rag", "--judge", "gpt", "--out", str(tmp_path)]) == 2
    assert "judge must be" in capsys.readouterr().err
    with pytest.raises(UnknownName):
        resolve_suites(["papers"])
