"""Progress inside a step: the rollout turns, both scoring passes and the update micro-batches."""

import pytest

pytest.importorskip("transformers")
pytest.importorskip("accelerate")
pytest.importorskip("torch")

from agemem_gym.adapters.grpo import trainer  # noqa: E402
from agemem_gym.adapters.grpo.config import load_config  # noqa: E402
from agemem_gym.adapters.grpo.metrics import StepProgress  # noqa: E402

pytestmark = pytest.mark.train


class RecordingProgress(StepProgress):
    """Records each phase's name, announced total and the units reported to it."""

    runs: list["RecordingProgress"] = []

    def __init__(self, enabled):
        super().__init__(False)  # no bar: the test reads the counts
        self.asked = enabled
        self.phases = []
        RecordingProgress.runs.append(self)

    def phase(self, name, total, unit="micro-batch"):
        record = {"name": name, "total": total, "done": 0, "unit": unit}
        self.phases.append(record)

        def update(n):
            record["done"] += n

        return update


def test_every_phase_of_a_step_reports_its_progress(tmp_path, monkeypatch):
    RecordingProgress.runs = []
    monkeypatch.setattr(trainer, "StepProgress", RecordingProgress)
    config = load_config(
        "cpu-smoke",
        output_dir=str(tmp_path),
        tensorboard=False,
        num_steps=2,
        tasks_per_step=1,
        group_size=3,
        row_tokens=128,  # several rows, so the scoring and update bars move more than once
        rows_per_micro_batch=1,
        update_epochs=2,
        save_every=1000,
    )
    result = trainer.train(config, progress=True)
    (run,) = RecordingProgress.runs
    assert run.asked
    names = [p["name"] for p in run.phases]
    assert names == ["rollout", "score π_old", "score π_ref", "update"] * 2
    for step, row in enumerate(result.metrics):
        rollout, old, ref, update = run.phases[4 * step : 4 * step + 4]
        assert rollout["unit"] == "turn" and rollout["done"] == row["perf/samples"] > 0
        assert old["total"] == ref["total"] == old["done"] == ref["done"] > 1
        assert update["total"] == update["done"] == 2 * old["total"]  # two epochs of one minibatch


def test_progress_false_shows_no_bar(tmp_path, capsys):
    phases = StepProgress(False)
    update = phases.phase("rollout", None, "turn")
    update(16)
    phases.close()
    assert capsys.readouterr().err == ""


def test_progress_bar_names_the_phase(capsys):
    phases = StepProgress(True)
    update = phases.phase("update", 3)
    update(1)
    phases.phase("score π_ref", 2)(2)  # a new phase replaces the bar
    phases.close()
    err = capsys.readouterr().err
    assert "update:" in err and "/3 [" in err  # the phase's name and its total
    assert "score π_ref:" in err and "/2 [" in err
