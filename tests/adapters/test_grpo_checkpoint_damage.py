"""A damaged checkpoint is named and passed over for the newest intact one (issue 29, item 8)."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from agemem_gym.adapters.grpo.checkpoint import damage, latest_checkpoint, load_training_state, save_checkpoint  # noqa: E402
from agemem_gym.error import InvalidConfig  # noqa: E402


@pytest.fixture(scope="module")
def tiny():
    from agemem_gym.policies.llm.models import load_model

    torch.set_num_threads(1)
    model, tokenizer = load_model("tiny", seed=0)
    return model, tokenizer, torch.optim.AdamW(model.parameters(), lr=1e-3)


def _two_checkpoints(folder, tiny):
    model, tokenizer, optimizer = tiny
    return [
        save_checkpoint(folder, step, model, tokenizer, optimizer, np.random.default_rng(step), {"seed": 0})
        for step in (0, 1)
    ]


def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


DAMAGES = {
    "trainer_state.json": lambda p: p.write_text('{"step": 1, "numpy_rng": {'),
    "optimizer.pt": _truncate,
    "rng.pt": lambda p: p.write_bytes(b"\0" * 64),
    "model/model.safetensors": _truncate,
}


@pytest.mark.parametrize("name", list(DAMAGES))
def test_the_newest_intact_checkpoint_is_used_with_a_notice(name, tmp_path, tiny, capsys):
    older, newest = _two_checkpoints(tmp_path, tiny)
    capsys.readouterr()  # the save's progress bars
    assert damage(older) is None and damage(newest) is None
    DAMAGES[name](newest / name)
    assert name in damage(newest)
    assert latest_checkpoint(tmp_path) == older
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("agemem: checkpoint-000001 is damaged (" + name)
    assert "using checkpoint-000000" in err[0]
    rng = np.random.default_rng(5)
    assert load_training_state(older, tiny[2], rng) == 0  # and it loads


def test_every_checkpoint_damaged_is_one_error_naming_the_file(tmp_path, tiny):
    for checkpoint in _two_checkpoints(tmp_path, tiny):
        _truncate(checkpoint / "optimizer.pt")
    with pytest.raises(InvalidConfig, match=r"every checkpoint .* is damaged \(checkpoint-000001: optimizer.pt") as err:
        latest_checkpoint(tmp_path)
    assert "--overwrite" in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("name", ["trainer_state.json", "optimizer.pt", "rng.pt"])
def test_loading_a_damaged_checkpoint_names_the_file(name, tmp_path, tiny):
    """What the checks cannot see (or a folder loaded directly) still ends in one line naming the file."""
    (checkpoint,) = _two_checkpoints(tmp_path, tiny)[1:]
    _truncate(checkpoint / name)
    with pytest.raises(InvalidConfig, match=f"{name} is damaged") as err:
        load_training_state(checkpoint, tiny[2], np.random.default_rng(0))
    assert "checkpoint-000001" in str(err.value) and "--overwrite" in str(err.value)
