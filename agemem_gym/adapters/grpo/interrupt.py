"""Ctrl-C during training: stop at a step boundary so the checkpoint describes a whole step.

A step changes the weights only in its update. SIGINT before the update (while collecting or
scoring rollouts, most of a step's time) stops at once: the step is dropped and the run's RNGs
are rewound to where it began, so the checkpoint of the step before equals an uninterrupted
run's. SIGINT during the update, logging or saving is deferred until the step is complete.
"""

from __future__ import annotations

import signal
import sys
import threading
from types import FrameType, TracebackType
from typing import Any

__all__ = ["TrainingInterrupted", "StepCompleted", "InterruptGuard"]


class TrainingInterrupted(KeyboardInterrupt):
    """Training stopped on SIGINT after saving a checkpoint of the last completed step.

    Attributes:
        step: The last completed step (-1: none).
        checkpoint: The checkpoint to resume from, if any.
        saved: Whether ``checkpoint`` holds ``step`` (a multi-process run only keeps its last
            regular checkpoint).
    """

    def __init__(self, step: int, checkpoint: Any, saved: bool = True) -> None:
        self.step = step
        self.checkpoint = checkpoint
        if not saved:  # several processes: one cannot save alone, and they stop at different points
            text = f"interrupted; nothing saved since the last checkpoint ({checkpoint}); resume with --resume"
        elif checkpoint is None:
            text = "interrupted before the first step completed; nothing to save"
        else:
            text = f"interrupted at step {step}; checkpoint saved to {checkpoint}; resume with --resume"
        super().__init__(text)


class StepCompleted(KeyboardInterrupt):
    """A deferred SIGINT, raised once the step it arrived in is complete."""


class InterruptGuard:
    """SIGINT raises ``KeyboardInterrupt``, except inside a critical section, where it waits.

    A context manager: the handler is installed on entry (main thread only: Python delivers
    signals there) and the previous one restored on exit.
    """

    def __init__(self) -> None:
        self.critical = False
        self.pending = False
        self._previous: Any = None
        self._installed = False

    def __enter__(self) -> InterruptGuard:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
            self._installed = True
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._installed:
            signal.signal(signal.SIGINT, self._previous)
            self._installed = False

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if not self.critical:
            raise KeyboardInterrupt
        if not self.pending:
            print("stopping once this step's update is done (saving a checkpoint)...", file=sys.stderr, flush=True)
        self.pending = True

    def enter_critical(self) -> None:
        """From here to :meth:`leave_critical`, the weights change: SIGINT waits."""
        self.critical = True

    def leave_critical(self) -> None:
        """The step is complete; raise :class:`StepCompleted` if SIGINT arrived meanwhile."""
        self.critical = False
        if self.pending:
            self.pending = False
            raise StepCompleted
