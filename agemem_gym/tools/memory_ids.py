"""The memory ids an env lists in ``info["memory_ids"]``: what a memory-id argument may name.

Tools declare their memory-id arguments (:attr:`~agemem_gym.tools.Tool.memory_ids`); the
constrained-decoding grammar limits those arguments to this list, so a small model cannot
invent an id.
"""

from __future__ import annotations

from typing import Protocol

__all__ = ["MEMORY_IDS_CAP", "live_memory_ids"]

MEMORY_IDS_CAP = 1024
"""Most ids listed. A larger store lists its newest ``MEMORY_IDS_CAP`` ids; a reader tells a
cut list by ``len(info["memory_ids"]) < info["ltm_size"]`` (the grammar then allows any id)."""


class _HasIds(Protocol):
    def ids(self) -> list[str]: ...


def live_memory_ids(ltm: _HasIds, cap: int = MEMORY_IDS_CAP) -> list[str]:
    """The live ids of ``ltm``, sorted: all of them, or the newest ``cap`` on a larger store.

    Sorted (not insertion order), so the same set of ids always gives the same list and the
    same grammar text (llguidance compiles once per distinct text). Costs one copy of the id
    list and a sort of at most ``cap`` ids, whatever the store's size.

    Args:
        ltm: A :class:`~agemem_gym.memory.ltm.LongTermMemory` (anything with ``ids()`` in
            insertion order).
        cap: Most ids returned.

    Returns:
        The ids.
    """
    ids = ltm.ids()
    return sorted(ids[-cap:] if len(ids) > cap else ids)
