"""``agemem view`` on recordings it did not expect: odd text renders, malformed files are refused in one line."""

import json
import random
import re

import gymnasium as gym
import pytest

import agemem_gym  # noqa: F401
from agemem_gym.cli import main
from agemem_gym.error import DataFormatError
from agemem_gym.tools import format_answer, format_tool_call
from agemem_gym.viewer import write_report
from agemem_gym.wrappers.record import RecordEpisode, read_episode

LONE = "bad \ud800 text \udfff"


@pytest.fixture(scope="module")
def surrogate_recording(tmp_path_factory):
    """An episode whose memory, turn and answer hold lone surrogates (the env accepts them)."""
    env = RecordEpisode(gym.make("AgeMem/HotpotQA-v0", num_distractors=0), tmp_path_factory.mktemp("rec"))
    env.reset(seed=0, options={"task_id": 0})
    env.step(format_tool_call([{"name": "Add_memory", "arguments": {"content": LONE}}], think=LONE))
    env.step(format_answer(LONE))
    env.close()
    return env.paths[0]


def test_a_memory_with_lone_surrogates_renders(surrogate_recording, tmp_path):
    assert any(m.content == LONE for m in read_episode(surrogate_recording).ltm(1))
    out = write_report([surrogate_recording], tmp_path / "r.html")
    page = out.read_text(encoding="utf-8")
    data = json.loads(re.search(r'id="agemem-data">(.*?)</script>', page, re.S).group(1))
    assert LONE in [m["content"] for m in data["episodes"][0]["memories"]]


def _write(path, lines):
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def _cli(capsys, *argv):
    status = main(["view", *map(str, argv)])
    return status, capsys.readouterr().err


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (
            lambda lines: [lines[0], "[1, 2]", *lines[1:]],
            ":2: not a valid agemem recording: the line should be an object",
        ),
        (lambda lines: ["[1]", *lines[1:]], ":1: not an agemem episode recording"),
        (
            lambda lines: [_edit(lines[0], reset=5), *lines[1:]],
            ":1: not a valid agemem recording: reset should be an object",
        ),
        (lambda lines: [_edit(lines[0], budget="x"), *lines[1:]], "budget should be an integer, not str"),
        (
            lambda lines: [lines[0], lines[1].replace('"reward":', '"reward":NaN,"r":'), *lines[2:]],
            "NaN is not a JSON value",
        ),
    ],
)
def test_malformed_recordings_are_one_line_errors(surrogate_recording, tmp_path, capsys, mutate, message):
    lines = surrogate_recording.read_text(encoding="utf-8").splitlines()
    bad = _write(tmp_path / "bad.jsonl", mutate(lines))
    status, err = _cli(capsys, bad, "--out", tmp_path / "r.html")
    assert status == 2
    assert err.startswith("agemem: error: ") and err.count("\n") == 1 and message in err
    assert not (tmp_path / "r.html").exists()


def _edit(line, **fields):
    return json.dumps({**json.loads(line), **fields})


def _nodes(value, path=()):
    yield path
    if isinstance(value, dict):
        for key, sub in value.items():
            yield from _nodes(sub, (*path, key))
    elif isinstance(value, list):
        for i, sub in enumerate(value):
            yield from _nodes(sub, (*path, i))


def _replace(value, path, new):
    if not path:
        return new
    copy = list(value) if isinstance(value, list) else dict(value)
    copy[path[0]] = _replace(value[path[0]], path[1:], new)
    return copy


def test_any_field_of_any_type_gives_a_page_or_a_data_format_error(surrogate_recording, tmp_path):
    """Every field of every record, replaced by a value of each other JSON type."""
    lines = surrogate_recording.read_text(encoding="utf-8").splitlines()
    records = [json.loads(line) for line in lines]
    cases = [(i, path) for i, record in enumerate(records) for path in _nodes(record) if path]
    random.Random(0).shuffle(cases)
    outcomes = {"page": 0, "refused": 0}
    for i, path in cases[:250]:
        for alien in ([], {}, "x", -1, 1.5, None, True):
            changed = [
                json.dumps(_replace(r, path, alien)) if j == i else line
                for j, (r, line) in enumerate(zip(records, lines))
            ]
            bad = _write(tmp_path / "bad.jsonl", changed)
            page = tmp_path / "r.html"
            page.unlink(missing_ok=True)
            try:
                write_report([bad], page)
            except DataFormatError as exc:
                assert str(exc), (i, path, alien)  # refused with a message, and no page left behind
                assert not page.exists(), (i, path, alien)
                outcomes["refused"] += 1
            else:
                assert page.stat().st_size > 0, (i, path, alien)  # any other exception fails the test
                outcomes["page"] += 1
    assert outcomes["page"] > 0 and outcomes["refused"] > 0, outcomes  # both kinds of field were hit
