"""Argument helpers shared by the commands."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any


def json_object(example: str) -> Callable[[str], dict[str, Any]]:
    """An argparse type that parses a JSON object; its error shows ``example``, what the option takes.

    Args:
        example: A valid value of the option, e.g. ``'{"num_distractors": 3}'``.
    """

    def parse(text: str) -> dict[str, Any]:
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise argparse.ArgumentTypeError(f"not valid JSON: {exc}") from exc
        except RecursionError:
            raise argparse.ArgumentTypeError(
                f"JSON nested too deeply to read; give a flat object, e.g. '{example}'"
            ) from None
        except ValueError as exc:  # an integer of thousands of digits
            raise argparse.ArgumentTypeError(f"not a JSON value this command can read ({exc})") from exc
        if not isinstance(value, dict):
            raise argparse.ArgumentTypeError(f"expected a JSON object, e.g. '{example}', got {text!r}")
        return value

    parse.__name__ = "JSON object"  # argparse names the type in some messages
    return parse


ENV_KWARGS = '{"num_distractors": 3}'
"""The example value of ``--env-kwargs``."""


def check_env_id(env_id: str) -> None:
    """Raise a "did you mean" :class:`~agemem_gym.error.UnknownName` for an unregistered env id.

    Ids of the form ``module:Env-v0`` import their module in ``gym.make``, so they are left
    to it.
    """
    import gymnasium as gym

    from agemem_gym import env_ids
    from agemem_gym.error import unknown_name

    if env_id in gym.registry or ":" in env_id:
        return
    raise unknown_name("environment", env_id, env_ids())


def non_negative_int(text: str) -> int:
    """An argparse type for seeds and counts that may be 0: an integer >= 0."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, e.g. 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, e.g. 0, got {value}")
    return value


def check_env_kwargs(env_kwargs: Mapping[str, Any], env_ids: Sequence[str] = ()) -> None:
    """Check ``env_kwargs`` before any model loads: the config fields, then each env's constructor.

    The env and memory configs are built from their fields; the other values are checked
    against the type hints of the constructors of ``MemoryEnv`` and of each env in ``env_ids``
    (:func:`agemem_gym.registration.check_env_arguments`), which ``gym.make`` would otherwise
    reach only after reading ``render_mode`` itself.
    """
    import dataclasses

    from agemem_gym.config import EnvConfig, MemoryConfig
    from agemem_gym.core import MemoryEnv
    from agemem_gym.registration import check_env_arguments
    from agemem_gym.typecheck import check_arguments

    if not isinstance(env_kwargs, Mapping):
        from agemem_gym.error import InvalidConfig

        raise InvalidConfig(f"env_kwargs must be an object (dict), e.g. {ENV_KWARGS}, got {env_kwargs!r}")
    for cls in (EnvConfig, MemoryConfig):
        fields = {f.name for f in dataclasses.fields(cls)}
        cls(**{k: v for k, v in env_kwargs.items() if k in fields})
    check_arguments(MemoryEnv, env_kwargs, "env_kwargs")
    for env_id in env_ids:
        check_env_arguments(env_id, env_kwargs)


POLICY_KWARGS_HELP = (
    "JSON object for the policy, e.g. '{\"top_k\": 3}'; with several --policy flags, one object per policy, "
    'e.g. \'{"rag": {"top_k": 3}, "openai:M": {"tools": "schema"}}\' (both forms work with one policy)'
)
"""The help of ``--policy-kwargs`` (run and eval take the same two forms)."""


def policy_kwargs_by_name(given: Mapping[str, Any], names: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Each policy's keyword arguments from ``--policy-kwargs``, given in either form.

    ``{"top_k": 3}`` is the arguments of the run's one policy; ``{"rag": {"top_k": 3}}`` (every
    key a ``--policy`` of the run) gives each policy its own. ``run`` and ``eval`` take both.

    Raises:
        InvalidConfig: Flat arguments with several policies (which one?), or a policy's entry
            that is not an object.
    """
    from agemem_gym.error import InvalidConfig

    if not given:
        return {name: {} for name in names}
    if set(given) <= set(names):
        for name, kwargs in given.items():
            if not isinstance(kwargs, dict):
                raise InvalidConfig(
                    f'--policy-kwargs takes {{"policy name": {{arguments}}}}; {name!r} maps to {kwargs!r}, '
                    f'e.g. {{"{name}": {{"top_k": 3}}}}'
                )
        return {name: dict(given.get(name, {})) for name in names}
    if len(set(names)) == 1:
        return {names[0]: dict(given)}
    raise InvalidConfig(
        f"--policy-kwargs names {sorted(set(given) - set(names))}, which is not a --policy of this run; with several "
        f'--policy flags give one object per policy, e.g. {{"{names[0]}": {{"top_k": 3}}}}'
    )


def policies_with_model() -> list[str]:
    """The policies that run a chat model and so take ``--model``."""
    from agemem_gym import policies

    return [name for name in policies.names() if "model" in policies.arguments(name)]


def check_model_option(model: str | None, policy_names: list[str]) -> None:
    """Check ``--model`` (name or folder, no loading) and that some policy of the run takes it."""
    if model is None:
        return
    from agemem_gym import policies
    from agemem_gym.error import InvalidConfig
    from agemem_gym.policies.llm.models import check_model

    takers = policies_with_model()
    if not set(policy_names) & set(takers):
        given = ", ".join(policy_names)
        raise InvalidConfig(
            f"--model applies to the policies that run a chat model ({', '.join(takers)}); {given} takes none"
        )
    # a served model's name is the server's business; only local models are checked here
    if any("base_url" not in policies.arguments(n) for n in set(policy_names) & set(takers)):
        check_model(model)
