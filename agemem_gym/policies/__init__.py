"""Policies: the ``Policy`` protocol, baselines and a name lookup.

>>> from agemem_gym import policies
>>> policies.make("store-all").name
'store-all'
"""

from __future__ import annotations

import importlib
from typing import Any

from agemem_gym.error import unknown_name
from agemem_gym.policies.base import BasePolicy, Policy
from agemem_gym.policies.random_policy import RandomPolicy
from agemem_gym.policies.reader import ExtractiveReader
from agemem_gym.policies.scripted import NoMemoryPolicy, OraclePolicy, RAGPolicy, StoreAllPolicy

__all__ = [
    "BasePolicy",
    "ExtractiveReader",
    "NoMemoryPolicy",
    "OraclePolicy",
    "POLICIES",
    "Policy",
    "RAGPolicy",
    "RandomPolicy",
    "StoreAllPolicy",
    "make",
    "names",
]

# name -> "module:Class"; resolved on use so optional dependencies load only when asked for.
POLICIES: dict[str, str] = {
    "random": "agemem_gym.policies.random_policy:RandomPolicy",
    "no-memory": "agemem_gym.policies.scripted:NoMemoryPolicy",
    "store-all": "agemem_gym.policies.scripted:StoreAllPolicy",
    "rag": "agemem_gym.policies.scripted:RAGPolicy",
    "oracle": "agemem_gym.policies.scripted:OraclePolicy",
    "mem0-style": "agemem_gym.policies.baselines.mem0:Mem0Policy",
    "mem0g-style": "agemem_gym.policies.baselines.mem0:Mem0GraphPolicy",
    "langmem-style": "agemem_gym.policies.baselines.langmem:LangMemPolicy",
    "amem-style": "agemem_gym.policies.baselines.amem:AMemPolicy",
    "hf": "agemem_gym.policies.llm.hf_policy:make_hf_policy",
}


def names() -> list[str]:
    """Every policy name :func:`make` knows."""
    return sorted(POLICIES)


def make(name: str, **kwargs: Any) -> Policy:
    """Build a policy by name.

    Args:
        name: One of :func:`names` (unknown names get a "did you mean").
        **kwargs: Passed to the policy's constructor.

    Returns:
        The policy.
    """
    if name not in POLICIES:
        raise unknown_name("policy", name, POLICIES)
    module, cls = POLICIES[name].split(":")
    return getattr(importlib.import_module(module), cls)(**kwargs)
