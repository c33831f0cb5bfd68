"""Turn recorded episodes into the plain data the viewer page draws.

Everything that needs Python (replaying diffs, matching memories against the gold facts with
the same offline matcher that computes MQ) happens here, once; the page's script only looks
things up. Text offsets are UTF-16 code units, as JavaScript strings count them.

Frame ``t`` is the state after step ``t`` (frame 0: after ``reset``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from agemem_gym.graders.facts import sentence_matches
from agemem_gym.text import content_words, split_sentences
from agemem_gym.tools import DEFAULT_TOOLS
from agemem_gym.wrappers.episode import Episode, MemoryRecord, StepRecord

__all__ = ["episode_view", "gold_spans"]

# messages whose text may state a gold fact worth marking (the source material, what came back
# from memory, summaries); turns and tool acknowledgements are left plain
_MARKED_KINDS = frozenset({"material", "retrieval", "summary", "observation"})
# calls whose results show memories (Retrieve_memory): their gold facts count as retrieved
_READS_MEMORY = frozenset(DEFAULT_TOOLS.touching("ltm_read"))
_FINAL_KEYS = (
    "answer",
    "task_score",
    "success",
    "memory_quality",
    "mq_precision",
    "mq_recall",
    "episode_reward",
    "reward_components",
    "penalties",
    "tool_calls",
    "invalid_calls",
    "prompt_tokens_mean",
    "turns",
)


def _u16(text: str, index: int) -> int:
    """``index`` (code points) as a UTF-16 offset.

    A lone surrogate (recorded text need not be valid Unicode) is one code unit in JavaScript
    too; ``surrogatepass`` counts it so instead of failing.
    """
    return index if text.isascii() else len(text[:index].encode("utf-16-le", "surrogatepass")) // 2


def gold_spans(text: str, facts: Sequence[str]) -> list[list[Any]]:
    """Sentences of ``text`` that state a gold fact, as ``[start, end, [fact indices]]``.

    Uses :func:`agemem_gym.graders.facts.sentence_matches`, the matcher behind MQ, so what the
    page marks is what the score counted. Offsets are UTF-16 code units.

    Example:
        >>> gold_spans("Noise here. Paris is the capital of France.", ["Paris is France's capital."])
        [[12, 43, [0]]]
    """
    if not facts or not text:
        return []
    spans: list[list[Any]] = []
    cursor = 0
    for sentence in split_sentences(text):
        start = text.find(sentence, cursor)
        if start < 0 or not content_words(sentence):
            continue
        cursor = start + len(sentence)
        hits = [j for j, fact in enumerate(facts) if sentence_matches(sentence, fact)]
        if hits:
            spans.append([_u16(text, start), _u16(text, cursor), hits])
    return spans


def _fact_set(spans: list[list[Any]]) -> list[int]:
    return sorted({j for _, _, hits in spans for j in hits})


class _Builder:
    """Collects the messages and memory versions of one episode, each stored once."""

    def __init__(self, episode: Episode) -> None:
        self.episode = episode
        self.facts = list(episode.task.get("facts") or [])
        self.messages: dict[int, dict[str, Any]] = {}
        self.memories: list[dict[str, Any]] = []
        self._memory_index: dict[tuple[str, str, str], int] = {}
        self.stored: list[list[list[Any]]] = [[] for _ in self.facts]
        self.retrieved: list[list[list[Any]]] = [[] for _ in self.facts]

    def message(self, msg: Any) -> int:
        if msg.n not in self.messages:
            spans = gold_spans(msg.content, self.facts) if msg.kind in _MARKED_KINDS else []
            self.messages[msg.n] = {
                "role": msg.role,
                "kind": msg.kind,
                "stage": msg.stage,
                "tokens": msg.tokens,
                "content": msg.content,
                "spans": spans,
            }
        return msg.n

    def memory(self, item: MemoryRecord) -> int:
        key = (item.id, item.content, json.dumps(item.metadata, sort_keys=True))
        if key not in self._memory_index:
            spans = gold_spans(item.content, self.facts)
            self._memory_index[key] = len(self.memories)
            self.memories.append(
                {
                    "id": item.id,
                    "content": item.content,
                    "metadata": item.metadata,
                    "spans": spans,
                    "facts": _fact_set(spans),
                }
            )
        return self._memory_index[key]

    def frame(self, t: int) -> dict[str, Any]:
        episode = self.episode
        ltm = [self.memory(m) for m in episode.ltm(t)]
        context = [self.message(m) for m in episode.context(t)]
        if t == 0:
            reset = episode.header["reset"]
            frame = {
                "t": 0,
                "stage": reset.get("stage") or 1,
                "tokens": reset["tokens"],
                "prompt_tokens": reset["prompt_tokens"],
                "overflow": bool(reset.get("overflow")),
                "context": context,
                "ltm": ltm,
                "new": list(context),
                "removed": [],
                "changes": {"added": [m["id"] for m in reset.get("ltm", [])], "updated": [], "deleted": []},
                "calls": [],
            }
            self._events(frame)
            return frame
        step = episode.steps[t - 1]
        frame = self._step_frame(step)
        frame.update(context=context, ltm=ltm, changes=self._changes(t, step))
        self._events(frame)
        return frame

    def _step_frame(self, step: StepRecord) -> dict[str, Any]:
        parsed = step.raw["parsed"]
        calls = []
        for call in step.calls:
            spans = gold_spans(call.result or "", self.facts) if call.name in _READS_MEMORY else []
            calls.append(
                {
                    "name": call.name,
                    "arguments": json.dumps(call.arguments, ensure_ascii=False, indent=1),
                    "ok": call.ok,
                    "result": call.result,
                    "spans": spans,
                }
            )
        # the turn, its call results and its error messages are drawn with the turn, not as arrivals
        own = {m["n"] for m in step.raw["context"]["added"] if "of" in m or m["kind"] == "error"}
        return {
            "t": step.t,
            "stage": step.stage,
            "round": step.round,
            "kind": step.kind,
            "action": step.action,
            "think": parsed.get("think"),
            "answer": parsed.get("answer"),
            "act": parsed.get("act"),
            "calls": calls,
            "errors": list(step.errors),
            "results_lost": bool(step.raw.get("results_lost")),
            "tokens": step.context_tokens,
            "prompt_tokens": step.prompt_tokens,
            "overflow": bool(step.raw["context"].get("overflow")),
            "reward": step.reward,
            "done": step.terminated or step.truncated,
            "new": [self.message(m) for m in step.added if m.n not in own],
            "removed": [self.messages[n]["content"][:160] if n in self.messages else "" for n in step.removed],
        }

    def _changes(self, t: int, step: StepRecord) -> dict[str, list[Any]]:
        diff = step.raw.get("ltm", {})
        before = {m.id: m for m in self.episode.ltm(t - 1)}
        return {
            "added": [e["id"] for e in diff.get("add", [])],
            "updated": [e["id"] for e in diff.get("update", [])],
            "deleted": [self.memory(before[mid]) for mid in diff.get("delete", []) if mid in before],
        }

    def _events(self, frame: dict[str, Any]) -> None:
        """Note when each gold fact was stored (added/updated) and retrieved."""
        t = frame["t"]
        changed = set(frame["changes"]["added"]) | set(frame["changes"]["updated"])
        for index in frame["ltm"]:
            mem = self.memories[index]
            if mem["id"] in changed:
                for j in mem["facts"]:
                    self.stored[j].append([t, mem["id"]])
        called = {j for c in frame["calls"] for j in _fact_set(c["spans"])}
        shown = [self.messages[n] for n in frame["new"]]
        auto = {j for m in shown if m["kind"] == "retrieval" for j in _fact_set(m["spans"])}
        for j in sorted(called | auto):
            self.retrieved[j].append([t, "call" if j in called else "auto"])


def episode_view(episode: Episode, name: str = "") -> dict[str, Any]:
    """The page data of one episode: header, frames, messages and memory versions, fact events.

    Args:
        episode: A recording read with :func:`~agemem_gym.wrappers.episode.read_episode`.
        name: A label (default: the file name).

    Returns:
        A JSON-serialisable dict.
    """
    builder = _Builder(episode)
    frames = [builder.frame(t) for t in range(len(episode) + 1)]
    header = episode.header
    task = episode.task
    final = episode.final
    return {
        "name": name or (episode.path.name if episode.path else "episode"),
        "env_id": episode.env_id,
        "episode": header.get("episode"),
        "seed": header.get("seed"),
        "metadata": header.get("metadata") or {},
        "budget": episode.budget,
        "task_id": task.get("task_id"),
        "query": task.get("query"),
        "answers": task.get("answers") or [],
        "facts": builder.facts,
        "complete": episode.complete,
        "return": (episode.end or {}).get("return"),
        "final": {k: final[k] for k in _FINAL_KEYS if k in final},
        "frames": frames,
        "messages": {str(n): m for n, m in builder.messages.items()},
        "memories": builder.memories,
        "stored": builder.stored,
        "retrieved": builder.retrieved,
    }
