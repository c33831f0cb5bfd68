"""Output paths are checked before any work starts; nothing is replaced unasked (issue 29, items 3 and 11).

Each case runs the real command as a subprocess, so a traceback printed by the interpreter
would fail the test.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PROBE = "AgeMem/Probe-Recall-v0"
RUN = ["run", PROBE, "--episodes", "2", "--no-progress"]
EVAL = ["eval", "--env", PROBE, "--policy", "oracle", "--episodes", "1"]
READ_ONLY = "/proc/agemem-out"  # even root cannot make a file in /proc


def agemem(*argv, cwd):
    environ = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    environ.pop("AGEMEM_DEBUG", None)
    return subprocess.run(
        [sys.executable, "-m", "agemem_gym", *argv], capture_output=True, text=True, env=environ, cwd=cwd, timeout=300
    )


def one_line_error(proc, *needles):
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1 and lines[0].startswith("agemem: error: "), proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def place(tmp_path):
    (tmp_path / "folder").mkdir()
    (tmp_path / "file.txt").write_text("mine")
    (tmp_path / "rec.jsonl").write_text("{}\n")
    return tmp_path


@pytest.mark.parametrize(
    ("argv", "needles"),
    [
        ([*RUN, "--json", "folder"], ["--json folder is a folder", "folder/out.json"]),
        ([*RUN, "--json", "new/"], ["--json new/ is a folder"]),
        ([*RUN, "--json", "file.txt/r.json"], ["file.txt is a file"]),
        ([*RUN, "--record", "file.txt"], ["--record file.txt is a file, not a folder"]),
        ([*EVAL, "--out", "file.txt"], ["--out file.txt is a file"]),
        (["train", "--output-dir", "file.txt"], ["--output-dir file.txt is a file"]),
        (["train", "--output-dir", "new", "--record", "file.txt"], ["--record file.txt is a file"]),
        (["view", "rec.jsonl", "--out", "folder"], ["--out folder is a folder", "report.html"]),
    ],
)
def test_an_unusable_output_path_is_one_line_before_any_work(argv, needles, place):
    one_line_error(agemem(*argv, cwd=place), *needles)
    assert (place / "file.txt").read_text() == "mine" and not (place / "new").exists()


@pytest.mark.skipif(not Path("/proc/self").exists(), reason="needs /proc")
@pytest.mark.parametrize(
    "argv",
    [
        [*RUN, "--json", f"{READ_ONLY}/r.json"],
        [*RUN, "--record", READ_ONLY],
        [*EVAL, "--out", READ_ONLY],
        ["train", "--output-dir", READ_ONLY],
        ["view", "rec.jsonl", "--out", f"{READ_ONLY}/r.html"],
    ],
)
def test_a_read_only_target_is_one_line(argv, place):
    one_line_error(agemem(*argv, cwd=place), "cannot write in /proc")


def test_run_json_and_view_out_never_replace_a_file_unasked(place):
    (place / "r.json").write_text("earlier results")
    one_line_error(agemem(*RUN, "--json", "r.json", cwd=place), "--json r.json already exists", "--overwrite")
    assert (place / "r.json").read_text() == "earlier results"
    assert agemem(*RUN, "--json", "r.json", "--overwrite", cwd=place).returncode == 0
    assert json.loads((place / "r.json").read_text())["env_id"] == PROBE

    (place / "report.html").write_text("my page")
    one_line_error(agemem("view", "rec.jsonl", cwd=place), "--out report.html already exists")
    assert (place / "report.html").read_text() == "my page"


def test_run_record_into_a_folder_of_recordings_is_refused_unless_overwrite(place):
    assert agemem(*RUN, "--record", "rec", cwd=place).returncode == 0
    first = sorted(p.name for p in (place / "rec").iterdir())
    one_line_error(agemem(*RUN, "--record", "rec", cwd=place), "already holds recordings", "--overwrite")
    assert agemem(*RUN, "--record", "rec", "--overwrite", cwd=place).returncode == 0
    assert sorted(p.name for p in (place / "rec").iterdir()) == first


def test_a_closed_stdout_loses_no_results_and_prints_no_traceback(tmp_path):
    """`agemem run ... --json r.json | head -1`."""
    environ = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "agemem_gym", *RUN, "--json", "r.json"],
        cwd=tmp_path, env=environ, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    proc.stdout.close()  # the reader leaves before the first line
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 141, err
    assert b"Traceback" not in err and b"BrokenPipe" not in err, err
    assert json.loads((tmp_path / "r.json").read_text())["env_id"] == PROBE
