"""`agemem run` on every id of the BabyAI, PDDL, synthetic, LoCoMo and LongMemEval families."""

import json

import pytest

from agemem_gym.cli import main
from tests.envs.utils import TESTABLE_IDS

FAMILIES = ("BabyAI", "PDDL", "FactUpdate", "LongRecall", "LoCoMo", "LongMemEval")
FAMILY_IDS = [i for i in TESTABLE_IDS if any(k in i for k in FAMILIES)]


@pytest.mark.parametrize("env_id", FAMILY_IDS)
def test_agemem_run_works_for_every_id(env_id, tmp_path, capsys):
    out_file = tmp_path / "run.json"
    args = ["run", env_id, "--policy", "store-all", "--episodes", "2", "--no-progress", "--json", str(out_file)]
    assert main([*args, "--env-kwargs", '{"num_distractors": 1}']) == 0
    assert "Episode metrics" in capsys.readouterr().out
    data = json.loads(out_file.read_text())
    assert data["summary"]["episodes"] == 2 and data["summary"]["invalid_calls"] == 0.0
    assert data["summary"]["tool_calls"]["Add_memory"] > 0
