"""``info["memory_ids"]``: the live LTM ids, sorted, capped on huge stores; declared memory-id arguments."""

import pickle

import gymnasium as gym
import pytest

import agemem_gym  # noqa: F401
from agemem_gym.error import InvalidConfig
from agemem_gym.tools import DEFAULT_TOOLS, DELETE_MEMORY, UPDATE_MEMORY, Tool, format_tool_call
from agemem_gym.tools.memory_ids import MEMORY_IDS_CAP, live_memory_ids


def add(content):
    return format_tool_call([{"name": "Add_memory", "arguments": {"content": content}}])


def test_the_table_declares_the_memory_id_arguments():
    declared = {t.name: t.memory_ids for t in DEFAULT_TOOLS if t.memory_ids}
    assert declared == {UPDATE_MEMORY: ("memory_id",), DELETE_MEMORY: ("memory_id",)}
    assert pickle.loads(pickle.dumps(DEFAULT_TOOLS[DELETE_MEMORY])).memory_ids == ("memory_id",)
    with pytest.raises(InvalidConfig, match="memory_ids"):
        Tool("Pin", "Pin one.", {"n": {"type": "integer"}}, handler=print, touches=frozenset(), memory_ids=("n",))


def test_info_lists_the_live_memory_ids_sorted():
    env = gym.make("AgeMem/HotpotQA-v0")
    _, info = env.reset(seed=0, options={"task_id": 0})
    assert info["memory_ids"] == []
    for text in ("The Danube flows through Vienna.", "Paris is in France.", "Rome is in Italy."):
        _, *_, info = env.step(add(text))
    ltm = env.unwrapped.ltm
    assert info["memory_ids"] == sorted(ltm.ids()) and len(info["memory_ids"]) == 3 == info["ltm_size"]
    gone = ltm.ids()[0]
    delete = {"name": "Delete_memory", "arguments": {"memory_id": gone, "confirmation": True}}
    _, *_, info = env.step(format_tool_call([delete]))
    assert info["memory_ids"] == sorted(ltm.ids()) and gone not in info["memory_ids"]


class _Store:
    def __init__(self, n):
        self._ids = [f"mem_{(7919 * i) % 100003:08x}" for i in range(n)]

    def ids(self):
        return list(self._ids)


def test_a_huge_store_lists_its_newest_ids_and_the_cut_shows():
    store = _Store(MEMORY_IDS_CAP + 500)
    listed = live_memory_ids(store)
    assert listed == sorted(store.ids()[-MEMORY_IDS_CAP:]) and len(listed) < len(store.ids())
    assert live_memory_ids(_Store(5)) == sorted(_Store(5).ids())


def test_team_infos_list_the_shared_memory_ids():
    pytest.importorskip("pettingzoo")
    from agemem_gym.adapters.pettingzoo import make_parallel

    env = make_parallel("TeamProbe-v0")
    obs, infos = env.reset(seed=1, options={"task_id": 4})
    assert all(i["memory_ids"] == [] for i in infos.values())
    actions = {a: add(obs[a][-1]["content"]) if a.startswith("reader") else add("note") for a in env.agents}
    _, _, _, _, infos = env.step(actions)
    ids = sorted(env.ltm.ids())
    assert ids and all(i["memory_ids"] == ids for i in infos.values())
