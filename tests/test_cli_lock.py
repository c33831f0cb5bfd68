"""One run per output folder (issue 29, item 4): a second run is refused; a dead run's lock is not."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EVAL = ["eval", "--env", "AgeMem/Probe-Recall-v0", "--policy", "oracle", "--episodes", "1", "--no-progress"]
HOLD = (
    "import sys, time\n"
    "from agemem_gym.commands._lock import folder_lock\n"
    "with folder_lock(sys.argv[1], '--out'):\n"
    "    print('locked', flush=True)\n"
    "    time.sleep(600)\n"
)

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="runs are locked with fcntl.flock")


def _environ():
    environ = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    environ.pop("AGEMEM_DEBUG", None)
    return environ


def agemem(*argv):
    return subprocess.run(
        [sys.executable, "-m", "agemem_gym", *argv], capture_output=True, text=True, env=_environ(), timeout=300
    )


@pytest.fixture
def holder(tmp_path):
    """A process that holds the run lock of ``tmp_path / "out"`` (like a running eval or train)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(tmp_path / "out")], stdout=subprocess.PIPE, text=True, env=_environ()
    )
    assert proc.stdout.readline().strip() == "locked"
    yield proc
    proc.kill()
    proc.wait(timeout=60)
    proc.stdout.close()


def _refused(proc, holder_pid):
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert "is in use by another agemem run" in lines[0] and f"pid {holder_pid}," in lines[0]


def test_a_second_run_on_a_folder_in_use_is_refused(tmp_path, holder):
    out = tmp_path / "out"
    (out / "results.json").write_text("the running eval's")
    _refused(agemem(*EVAL, "--out", str(out), "--overwrite"), holder.pid)
    _refused(agemem(*EVAL, "--out", str(out), "--resume"), holder.pid)
    _refused(agemem("train", "--output-dir", str(out), "--steps", "1"), holder.pid)
    assert (out / "results.json").read_text() == "the running eval's"


def test_the_lock_of_a_killed_run_does_not_block_the_next(tmp_path, holder):
    out = tmp_path / "out"
    holder.send_signal(signal.SIGKILL)  # no cleanup: the lock file stays, the kernel drops the lock
    holder.wait(timeout=60)
    assert (out / ".agemem.lock").exists()
    done = agemem(*EVAL, "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert (out / "results.json").is_file() and not (out / ".agemem.lock").exists()
