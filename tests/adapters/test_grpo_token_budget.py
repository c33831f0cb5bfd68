"""The generated-token budget: a run stops after the step that spends it, and a resumed run keeps counting."""

import json

import pytest

pytest.importorskip("transformers")
pytest.importorskip("accelerate")
pytest.importorskip("torch")

from agemem_gym.adapters.grpo.config import GRPOConfig, load_config  # noqa: E402
from agemem_gym.adapters.grpo.trainer import train  # noqa: E402
from agemem_gym.error import InvalidConfig  # noqa: E402

pytestmark = pytest.mark.train


def budget_config(tmp_path, **changes):
    env_kwargs = {"num_tasks": 1, "max_rounds": 2, "tools_in_system_prompt": False, "reward": "answer_only"}
    base = load_config("cpu-smoke", output_dir=str(tmp_path), tensorboard=False, save_every=1000, env_kwargs=env_kwargs)
    return base.replace(**{"tasks_per_step": 1, "group_size": 4, "num_steps": 6, **changes})


def _totals(rows):
    return [(r["step"], r["perf/generated_tokens"], r["perf/generated_tokens_total"]) for r in rows]


def test_budget_ends_the_run_after_the_step_that_spends_it_and_resume_keeps_the_count(tmp_path, capsys):
    first = train(budget_config(tmp_path, generated_token_budget=1), progress=False)
    assert [r["step"] for r in first.metrics] == [0.0]  # any generated token spends a budget of 1
    spent = first.metrics[0]["perf/generated_tokens_total"]
    assert spent == first.metrics[0]["perf/generated_tokens"] > 0
    assert first.checkpoint is not None and first.checkpoint.name == "checkpoint-000000"  # saved as at the end
    assert "generated-token budget reached after step 0" in capsys.readouterr().out
    state = json.loads((first.checkpoint / "trainer_state.json").read_text())
    assert state["counters"] == {"generated_tokens_total": spent}

    # a larger budget resumes (a stopping rule may change, like num_steps): step 1 spends it only
    # if the count went on from step 0's total (restarted from 0 it would run to num_steps)
    second = train(budget_config(tmp_path, generated_token_budget=int(spent) + 1), progress=False)
    (_, g0, t0), (_, g1, t1) = _totals(second.metrics)
    assert [r["step"] for r in second.metrics] == [0.0, 1.0] and t0 == g0 == spent and t1 == t0 + g1
    assert second.checkpoint is not None and second.checkpoint.name == "checkpoint-000001"

    # resumed with the budget already spent: no step runs
    again = train(budget_config(tmp_path, generated_token_budget=int(spent) + 1), progress=False)
    assert len(again.metrics) == 2 and again.checkpoint == second.checkpoint

    # a checkpoint from before the counter: the logged steps it covers are summed
    path = second.checkpoint / "trainer_state.json"
    state = json.loads(path.read_text())
    del state["counters"]
    path.write_text(json.dumps(state))
    third = train(budget_config(tmp_path, generated_token_budget=int(t1) + 1), progress=False)
    (_, _, t2_prev), (_, g2, t2) = _totals(third.metrics)[1:]
    assert len(third.metrics) == 3 and t2 == t1 + g2 and t2_prev == t1


def test_budget_off_runs_every_step_and_bad_budgets_are_refused(tmp_path):
    with pytest.raises(InvalidConfig, match="generated_token_budget must be >= 0"):
        GRPOConfig(generated_token_budget=-1)
    result = train(budget_config(tmp_path, num_steps=2), progress=False)
    rows = _totals(result.metrics)
    assert [r[0] for r in rows] == [0.0, 1.0] and rows[1][2] == rows[0][1] + rows[1][1]
