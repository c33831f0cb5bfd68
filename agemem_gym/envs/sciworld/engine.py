"""One ScienceWorld simulator (a JVM behind py4j), started so that its episodes are reproducible.

``scienceworld.ScienceWorldEnv`` is a thin py4j wrapper around the bundled jar. This engine
talks to the same jar through py4j directly, for three reasons:

* **Reproducibility.** The simulator lists objects (and names them in its valid-action
  strings) in the iteration order of Java hash sets keyed by identity hash codes, which
  HotSpot draws at random: the same variation and the same actions gave a different
  first observation on every reset. Identity hash codes are the only source of variation
  we found, so the JVM starts with ``-XX:hashCode=2`` (every identity hash is the
  constant 1; hash sets then iterate in insertion order, which the simulator makes
  deterministic). With it, all 28 tasks we tried gave identical observations over
  repeated resets, reloads and processes, whether or not a gold path was generated. The
  price is a slower step (median 33 ms instead of 24 ms along panel gold paths; hash
  sets with one bucket).
* **Cost.** ``ScienceWorldEnv.step`` also builds the list of valid actions (400–3,000
  strings, most of its cost); the engine steps the simulator alone and lists actions only
  when asked (median 33 ms against 192 ms, ``benchmarks/bench_engine_speed.py``).

* **Memory.** Left alone, the JVM grows its heap towards a quarter of the machine's RAM
  (about 40 MB per reset here) rather than collecting; the engine caps it (256 MB by
  default, serial collector), and the process then stays near 350 MB over 1,000 resets.

If a JVM refuses the flag (a future JDK that drops it), the engine starts without it and
warns that episodes are no longer reproducible.
"""

from __future__ import annotations

import shutil
import subprocess
import threading
import warnings
from typing import Any

from agemem_gym.error import DependencyNotInstalled, missing_dependency

__all__ = ["ScienceWorldEngine", "require_scienceworld"]

DETERMINISTIC_JAVA_OPTS = ("-XX:+UnlockExperimentalVMOptions", "-XX:hashCode=2")
# 256 MB holds every task, the 145-step mendelian-genetics gold path included; the serial
# collector suits one small heap and starts no extra GC threads.
DEFAULT_HEAP_MB = 256
_STOP_TIMEOUT_S = 10.0


def require_scienceworld() -> None:
    """Check that ``scienceworld`` and a Java runtime are installed (called at construction).

    Raises:
        DependencyNotInstalled: Naming the extra or the Java package to install.
    """
    try:
        import py4j  # noqa: F401
        import scienceworld  # noqa: F401
    except ImportError as exc:
        raise missing_dependency("scienceworld", "envs") from exc
    if shutil.which("java") is None:
        raise DependencyNotInstalled(
            "ScienceWorld runs in a Java VM but no `java` is on PATH; install a Java runtime (11 or newer), "
            "e.g. `apt-get install default-jre-headless` (Debian/Ubuntu) or `brew install openjdk`."
        )


class ScienceWorldEngine:
    """A running ScienceWorld simulator.

    Args:
        deterministic: Start the JVM with constant identity hash codes (see the module
            docstring); ``False`` gives the simulator's own, varying object order.
        heap_mb: Maximum Java heap in MB.

    Attributes:
        deterministic: Whether the JVM runs with the reproducibility flag.
    """

    def __init__(self, deterministic: bool = True, heap_mb: int = DEFAULT_HEAP_MB) -> None:
        require_scienceworld()
        self.deterministic = False
        self._gateway: Any = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._heap_opts = (f"-Xmx{int(heap_mb)}m", "-XX:+UseSerialGC")
        gateway = None
        if deterministic:
            try:
                gateway = self._launch(DETERMINISTIC_JAVA_OPTS)
                self.deterministic = True
            except (ValueError, OSError):  # the JVM rejected the option and exited before printing its port
                warnings.warn(
                    "this Java VM rejects -XX:hashCode=2; ScienceWorld starts without it and its object order "
                    "(hence observations) may differ between resets",
                    RuntimeWarning,
                    stacklevel=2,
                )
        if gateway is None:
            gateway = self._launch(())
        self.server = gateway.jvm.scienceworld.runtime.pythonapi.PythonInterface()

    def _launch(self, java_opts: tuple[str, ...]) -> Any:
        """Start the JVM with ``java_opts`` and connect; returns the gateway (also kept for ``close``)."""
        from py4j.java_gateway import GatewayParameters, JavaGateway, launch_gateway
        from scienceworld.constants import BASEPATH, JAR_PATH

        # die_on_exit: the JVM exits when our stdin pipe closes, so it never outlives Python
        port, proc = launch_gateway(
            classpath=JAR_PATH,
            javaopts=[*self._heap_opts, *java_opts],
            die_on_exit=True,
            cwd=BASEPATH,
            return_proc=True,
        )
        self._proc = proc
        self._gateway = JavaGateway(gateway_parameters=GatewayParameters(port=port), java_process=proc)
        return self._gateway

    @property
    def pid(self) -> int | None:
        """Process id of the JVM (``None`` once closed)."""
        return None if self._proc is None else self._proc.pid

    # ---------------------------------------------------------------- tasks
    def task_names(self) -> list[str]:
        """Every task the simulator knows."""
        return [str(t) for t in self.server.getTaskNames()]

    def variations(self, task: str, split: str) -> list[int]:
        """Variation ids of ``split`` (``train``, ``dev`` or ``test``); loads ``task`` first."""
        self.server.load(task, 0, "", False)  # the split lists exist only after a load
        getter = {
            "train": self.server.getVariationsTrain,
            "dev": self.server.getVariationsDev,
            "test": self.server.getVariationsTest,
        }[split]
        return [int(v) for v in getter()]

    def load(self, task: str, variation: int, simplifications: str = "", gold: bool = False) -> None:
        """Load one variation (and generate its gold path when ``gold``)."""
        self.server.load(task, int(variation), simplifications, bool(gold))

    def gold_path(self) -> list[str]:
        """The gold actions of the variation last loaded with ``gold=True``."""
        return [str(a) for a in self.server.getGoldActionSequence()]

    def description(self) -> str:
        """The loaded task's description ("Your task is to ...")."""
        return str(self.server.getTaskDescription())

    # ---------------------------------------------------------------- episode
    def reset(self) -> str:
        """Back to the start of the loaded variation; returns the ``look around`` text."""
        self.server.reset()
        return str(self.server.step("look around"))

    def step(self, action: str) -> tuple[str, int]:
        """Apply one action; return the observation and the score (0–100, −100 when failed)."""
        from py4j.protocol import Py4JJavaError

        try:
            observation = str(self.server.step(action))
        except Py4JJavaError:  # none seen in fuzzing, but agent text must never crash the env
            observation = "The simulator could not process that input."
        return observation, self.score()

    def score(self) -> int:
        """The current score (0–100, −100 when the task failed)."""
        return int(round(100 * float(self.server.getScore())))

    def valid_actions(self) -> list[str]:
        """The simulator's valid action-object combinations, sorted (hundreds to thousands)."""
        return sorted(str(a) for a in self.server.getValidActionObjectCombinations())

    # ---------------------------------------------------------------- lifetime
    def close(self) -> None:
        """Shut the gateway down and wait for the JVM to exit (idempotent)."""
        gateway, proc = self._gateway, self._proc
        self._gateway = self._proc = None
        if gateway is not None:
            try:
                gateway.shutdown()
            except Exception:  # noqa: BLE001 - the JVM may already be gone; we only need it to exit
                pass
        if proc is not None:
            _stop(proc)

    def __del__(self) -> None:
        # an env dropped without close() must not leave its JVM behind (py4j's own threads keep
        # the process object alive, so nothing else would end it before Python exits)
        try:
            self.close()
        except Exception:  # noqa: BLE001 - never raise from a finaliser (interpreter shutdown included)
            pass


def _stop(proc: subprocess.Popen[bytes]) -> None:
    # py4j's GatewayServer exits once its stdin closes (--die-on-broken-pipe)
    try:
        if proc.stdin is not None:
            proc.stdin.close()
    except OSError:
        pass
    try:
        proc.wait(timeout=_STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    # py4j's ProcessConsumer thread closes the process's pipes once it has exited: wait for it,
    # so no file handle outlives close()
    for thread in threading.enumerate():
        if getattr(thread, "proc", None) is proc:
            thread.join(timeout=_STOP_TIMEOUT_S)
