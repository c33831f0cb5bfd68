"""The README's commands and snippets do what it says (issue 29, item 14)."""

import json
import re
import shlex
from pathlib import Path

import pytest

from agemem_gym import policies
from agemem_gym.cli import main
from agemem_gym.evaluation import run_episodes

README = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")


def _python_block_after(heading: str) -> str:
    section = README[README.index(heading) :]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_pettingzoo_snippet_runs_as_written():
    pytest.importorskip("pettingzoo")
    namespace: dict = {}
    exec(compile(_python_block_after("## Shared-memory teams with PettingZoo"), "README.md", "exec"), namespace)
    assert not namespace["env"].agents  # the loop ran to the end of the episode


def _output_dir(line: str) -> str:
    argv = shlex.split(line.split("#")[0])
    return argv[argv.index("--output-dir") + 1] if "--output-dir" in argv else "runs/<config>"


def test_the_training_lines_use_different_output_folders():
    """A second run into a used folder is refused, so two README lines must not share one."""
    block = README[README.index("## Train a memory-managing LLM") :].split("```")[1]
    smoke = [line for line in block.splitlines() if "--config cpu-smoke" in line]
    assert len(smoke) >= 2
    assert len({_output_dir(line) for line in smoke}) == len(smoke), smoke


def test_slow_snippets_say_how_long_they_take():
    hf = README[README.index("--policy hf --model smollm2 --episodes 2") :][:400]
    assert "minutes" in hf and "progress bar" in hf
    sb3 = _python_block_after("## Memory controllers with stable-baselines3")
    assert "minutes" in sb3


def test_the_suite_flag_is_described_as_replacing_the_paper_suite():
    assert "add others" not in README
    assert "*instead of* the paper's" in README


@pytest.mark.parametrize(
    ("command", "given"),
    [
        ("run", {"top_k": -3}),
        ("run", {"rag": {"top_k": -3}}),
        ("eval", {"top_k": -3}),
        ("eval", {"rag": {"top_k": -3}}),
    ],
)
def test_run_and_eval_take_both_policy_kwargs_forms(capsys, tmp_path, command, given):
    """The flat and the per-policy form reach the policy: its range check answers, not the form."""
    argv = {"run": ["run", "AgeMem/HotpotQA-v0"], "eval": ["eval", "--env", "AgeMem/HotpotQA-v0", "--out", tmp_path]}
    status = main([*map(str, argv[command]), "--policy", "rag", "--policy-kwargs", json.dumps(given)])
    err = capsys.readouterr().err
    assert status == 2 and "policy 'rag': argument top_k must be an integer >= 1, got -3" in err, err


def test_flat_policy_kwargs_with_several_policies_ask_for_the_per_policy_form(capsys, tmp_path):
    argv = ["eval", "--env", "AgeMem/HotpotQA-v0", "--out", str(tmp_path), "--policy", "rag", "--policy", "oracle"]
    status = main([*argv, "--policy-kwargs", '{"top_k": 2}'])
    err = capsys.readouterr().err
    assert status == 2 and 'one object per policy, e.g. {"rag": {"top_k": 3}}' in err, err


def test_the_progress_bar_shows_the_turn_of_the_episode(capsys):
    """A slow chat model takes minutes per episode: the bar moves with every turn, not per episode."""
    run_episodes("AgeMem/Probe-Recall-v0", policies.make("store-all"), episodes=1, progress=True)
    assert "turn 1" in capsys.readouterr().err
