"""The task an episode is about: what Stage 1 shows, what Stage 3 asks, how it is graded."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

__all__ = ["Task"]


@dataclasses.dataclass(frozen=True)
class Task:
    """One task instance.

    Attributes:
        task_id: Stable id (a dataset id or a generated one); also seeds the distractors.
        query: The Stage-3 user message.
        answers: Acceptable answers (QA tasks).
        material: Stage-1 messages, one per paragraph / document / piece of prior material.
        single_material: Stage 1 as one message (``stage1_mode="single"``); built from
            ``material`` when ``None``.
        facts: Gold supporting facts for memory quality and the memory reward (``None`` when
            the task has none).
        stale: Statements the environment supersedes during the episode (an old value a
            later message replaces or withdraws): a memory that still states one is out of
            date, and removing it earns R_maintenance. ``None``: nothing goes stale (the
            term is then not scored).
        extra: Task-specific data (e.g. the record it came from).
    """

    task_id: str
    query: str
    answers: tuple[str, ...] = ()
    material: tuple[str, ...] = ()
    single_material: str | None = None
    facts: tuple[str, ...] | None = None
    stale: tuple[str, ...] | None = None
    extra: Mapping[str, Any] = dataclasses.field(default_factory=dict)
