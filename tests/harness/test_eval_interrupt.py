"""Ctrl-C during an eval with worker processes: one line, exit 130, no worker tracebacks (issue 29, item 6)."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(sys.platform == "win32", reason="sends SIGINT to a process group")
def test_ctrl_c_with_async_workers_is_one_line_and_130(tmp_path):
    out = tmp_path / "ev"
    environ = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    environ.pop("AGEMEM_DEBUG", None)
    argv = ["eval", "--env", "AgeMem/HotpotQA-v0", "--policy", "rag", "--episodes", "100000", "--num-envs", "2"]
    argv += ["--vector-mode", "async", "--out", str(out), "--no-progress", "--no-plots"]
    # its own process group, as a shell gives a foreground job: Ctrl-C reaches the workers too
    proc = subprocess.Popen(
        [sys.executable, "-m", "agemem_gym", *argv], cwd=tmp_path, env=environ, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        while not (out / "results.json").exists():  # saved just before the workers start
            assert proc.poll() is None, proc.stderr.read()
            time.sleep(0.1)
        time.sleep(3.0)  # the workers are stepping (100000 episodes take far longer)
        assert proc.poll() is None
        os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    lines = err.strip().splitlines()
    assert proc.returncode == 130, err
    assert len(lines) == 1 and lines[0].startswith("interrupted: 0 of 1 benchmark panels done"), err
