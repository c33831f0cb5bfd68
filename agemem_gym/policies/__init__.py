"""Policies: the ``Policy`` protocol, baselines and a name lookup.

>>> from agemem_gym import policies
>>> policies.make("store-all").name
'store-all'
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Mapping
from typing import Any

from agemem_gym.error import InvalidConfig, unknown_name
from agemem_gym.policies.base import BasePolicy, Policy
from agemem_gym.policies.random_policy import RandomPolicy
from agemem_gym.policies.reader import ExtractiveReader
from agemem_gym.policies.scripted import NoMemoryPolicy, OraclePolicy, RAGPolicy, StoreAllPolicy
from agemem_gym.typecheck import check_arguments as _check_types

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
    "arguments",
    "check_arguments",
    "make",
    "names",
    "split_name",
]

# name -> "module:Class"; resolved on use so optional dependencies load only when asked for.
POLICIES: dict[str, str] = {
    "random": "agemem_gym.policies.random_policy:RandomPolicy",
    "no-memory": "agemem_gym.policies.scripted:NoMemoryPolicy",
    "store-all": "agemem_gym.policies.scripted:StoreAllPolicy",
    "rag": "agemem_gym.policies.scripted:RAGPolicy",
    "oracle": "agemem_gym.policies.scripted:OraclePolicy",
    "demonstrator": "agemem_gym.policies.demonstrator:DemonstratorPolicy",
    "mem0-style": "agemem_gym.policies.baselines.mem0:Mem0Policy",
    "mem0g-style": "agemem_gym.policies.baselines.mem0:Mem0GraphPolicy",
    "langmem-style": "agemem_gym.policies.baselines.langmem:LangMemPolicy",
    "amem-style": "agemem_gym.policies.baselines.amem:AMemPolicy",
    "hf": "agemem_gym.policies.llm.hf_policy:make_hf_policy",
    "openai": "agemem_gym.policies.llm.openai_policy:OpenAIPolicy",
}

# "openai:MODEL" is the "openai" policy serving MODEL (the part after the first colon).
_MODEL_PREFIXES = ("openai",)


# Where a constructor passes **kwargs on, the callable that receives them (its names count too).
_FORWARDS_TO: dict[str, str] = {"hf": "agemem_gym.policies.llm.hf_policy:HFPolicy"}
# Positional objects the forwarding factory fills in itself: not arguments a user can give.
_FILLED_IN: dict[str, frozenset[str]] = {"hf": frozenset({"tokenizer"})}


def split_name(name: str) -> tuple[str, dict[str, Any]]:
    """The table name of a policy and the arguments its name carries.

    ``"openai:MODEL"`` is ``("openai", {"model": "MODEL"})``; any other name is itself, with none.

    Example:
        >>> split_name("openai:Qwen/Qwen3-8B")
        ('openai', {'model': 'Qwen/Qwen3-8B'})
    """
    base, colon, model = str(name).partition(":")
    if colon and base in _MODEL_PREFIXES:
        if not model:
            raise InvalidConfig(f"policy {name!r} names no model; write {base}:MODEL")
        return base, {"model": model}
    return name, {}


def _resolve(target: str) -> Any:
    module, attr = target.split(":")
    return getattr(importlib.import_module(module), attr)


def _named_parameters(target: Any) -> set[str]:
    """Keyword names ``target`` takes; a class's ``**kwargs`` passed to its base adds the base's."""
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    if isinstance(target, type):
        inits = [c.__dict__["__init__"] for c in target.__mro__ if "__init__" in c.__dict__]
    else:
        inits = [target]
    names: set[str] = set()
    for init in inits:
        params = inspect.signature(init).parameters.values()
        names |= {p.name for p in params if p.kind in kinds} - {"self"}
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
            break
    return names


def arguments(name: str) -> list[str]:
    """The keyword arguments policy ``name`` accepts (``--policy-kwargs``, ``--model``).

    Args:
        name: One of :func:`names`, or ``openai:MODEL`` (its model is given: not listed).

    Returns:
        The argument names, sorted.
    """
    name, carried = split_name(name)
    if name not in POLICIES:
        raise unknown_name("policy", name, POLICIES)
    accepted = _named_parameters(_resolve(POLICIES[name]))
    if name in _FORWARDS_TO:
        accepted |= _named_parameters(_resolve(_FORWARDS_TO[name])) - _FILLED_IN.get(name, frozenset())
    return sorted(accepted - set(carried))


def check_arguments(name: str, kwargs: Mapping[str, Any]) -> None:
    """Raise before anything loads when ``kwargs`` holds an argument policy ``name`` does not take.

    Values are checked against the constructor's type hints (:mod:`agemem_gym.typecheck`), the
    same declaration the constructor itself checks, so ``top_k="x"`` fails here, before a
    model loads, with the message the constructor would give.

    Args:
        name: One of :func:`names` (unknown names get a "did you mean").
        kwargs: The constructor arguments.

    Raises:
        UnknownName: ``name`` is not a policy.
        InvalidConfig: An argument the policy does not accept (the message lists those it
            does), or a value of another type or out of range.
    """
    accepted = arguments(name)
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:
        raise InvalidConfig(
            f"policy {name!r} takes no argument {unknown[0]!r}; it accepts: {', '.join(accepted) or 'none'}"
        )
    base, _ = split_name(name)
    owner = f"policy {base!r}"
    _check_types(_resolve(POLICIES[base]), kwargs, owner)
    if base in _FORWARDS_TO:
        _check_types(_resolve(_FORWARDS_TO[base]), kwargs, owner)


def names() -> list[str]:
    """Every policy name :func:`make` knows."""
    return sorted(POLICIES)


def make(name: str, **kwargs: Any) -> Policy:
    """Build a policy by name.

    Args:
        name: One of :func:`names` (unknown names get a "did you mean"), or ``openai:MODEL``
            for a model behind an OpenAI-compatible endpoint.
        **kwargs: Passed to the policy's constructor (:func:`arguments` lists them).

    Returns:
        The policy.

    Raises:
        UnknownName: ``name`` is not a policy.
        InvalidConfig: An argument the policy does not accept.
    """
    check_arguments(name, kwargs)
    base, carried = split_name(name)
    return _resolve(POLICIES[base])(**carried, **kwargs)
