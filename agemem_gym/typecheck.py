"""Check constructor arguments against the constructor's own type hints.

Each env and policy declares its arguments once, in its signature: the type hints say what
each argument takes, and :class:`Range` inside ``Annotated`` adds bounds (``top_k:
PositiveInt = 3``). :func:`check_arguments` compares given values with those declarations,
so ``data_path=7`` or ``top_k="x"`` raises :class:`~agemem_gym.error.InvalidConfig` naming
the argument, the type it takes and an example, instead of a ``TypeError`` deep inside a
loader or an ``AttributeError`` at step 37. :func:`checked_init` applies the check to a
class's ``__init__``; ``MemoryEnv`` and ``BasePolicy`` apply it to every subclass, and
``agemem_gym.policies.make`` checks before any model loads.

The checker models the hints the package uses (builtins, unions, ``Literal``, ``Annotated``,
``Sequence``/``Mapping``/``Callable``, ``os.PathLike``, classes and protocols); a hint it
does not model accepts anything, and the constructor's own checks apply.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import functools
import inspect
import json
import numbers
import os
import types
import typing
from collections.abc import Callable, Mapping
from typing import Annotated, Any, Literal, TypeVar, Union

import numpy as np

from agemem_gym.error import InvalidConfig

__all__ = [
    "NonNegativeFloat",
    "NonNegativeInt",
    "PositiveFloat",
    "PositiveInt",
    "Probability",
    "Range",
    "check_arguments",
    "checked_init",
    "describe",
    "fits",
    "short_repr",
]


@dataclasses.dataclass(frozen=True)
class Range:
    """Bounds of a number, used as ``Annotated[int, Range(1)]`` (both ends inclusive)."""

    low: float | None = None
    high: float | None = None
    exclusive_low: bool = False

    def holds(self, value: Any) -> bool:
        """Whether ``value`` lies within the bounds (NaN lies within none)."""
        if value != value:
            return False
        if self.low is not None and (value <= self.low if self.exclusive_low else value < self.low):
            return False
        return self.high is None or value <= self.high

    def words(self) -> str:
        """The bounds in words (``">= 1"``)."""
        parts = [f"{'>' if self.exclusive_low else '>='} {self.low:g}"] if self.low is not None else []
        parts += [f"<= {self.high:g}"] if self.high is not None else []
        return " and ".join(parts)


PositiveInt = Annotated[int, Range(1)]
"""An integer >= 1 (a count, ``top_k``)."""
NonNegativeInt = Annotated[int, Range(0)]
"""An integer >= 0 (a seed, a retry count)."""
PositiveFloat = Annotated[float, Range(0, exclusive_low=True)]
"""A number > 0 (a timeout)."""
NonNegativeFloat = Annotated[float, Range(0)]
"""A number >= 0 (a temperature, a backoff)."""
Probability = Annotated[float, Range(0, 1)]
"""A number from 0 to 1."""

_WORDS = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}
_EXAMPLES: dict[Any, Any] = {bool: True, int: 3, float: 0.5, str: "text"}


def _protocol_methods(cls: type) -> list[str]:
    return sorted(n for n, v in vars(cls).items() if not n.startswith("_") and callable(v))


def _fits_class(value: Any, hint: type) -> bool:
    if hint is bool:
        return isinstance(value, (bool, np.bool_))
    if hint is int:  # True is an int to Python, but never a count; numpy integers are counts
        return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))
    if hint is float:
        return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))
    if hint is str:  # a path object where a name or folder is asked for, as the config check allows
        return isinstance(value, (str, os.PathLike))
    if getattr(hint, "_is_protocol", False):  # structural: the protocol's methods are there
        return all(callable(getattr(value, name, None)) for name in _protocol_methods(hint))
    return isinstance(value, hint)


def _fits_generic(value: Any, origin: Any, args: tuple[Any, ...]) -> bool:
    if origin in (collections.abc.Sequence, list, tuple, collections.abc.Iterable):
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
            return False
        items = args[:1] if origin is not tuple or Ellipsis in args else ()
        return all(fits(v, items[0]) for v in value) if items else True
    if origin in (collections.abc.Mapping, dict, collections.abc.MutableMapping):
        return isinstance(value, Mapping)
    if origin is collections.abc.Callable:
        return callable(value)
    if origin is os.PathLike:
        return isinstance(value, os.PathLike)
    if origin is type:
        return isinstance(value, type)
    return True  # a generic this checker does not model


def fits(value: Any, hint: Any) -> bool:
    """Whether ``value`` fits the type hint ``hint`` (``Annotated`` bounds included).

    Example:
        >>> fits(3, PositiveInt), fits(-3, PositiveInt), fits("3", int | None)
        (True, False, False)
    """
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any or isinstance(hint, (TypeVar, str)):
        return True
    if origin is Annotated:
        bounds = [m for m in hint.__metadata__ if isinstance(m, Range)]
        return fits(value, args[0]) and all(b.holds(value) for b in bounds)
    if origin is Union or origin is types.UnionType:
        return any(fits(value, a) for a in args)
    if origin is Literal:
        return value in args
    if hint is None or hint is type(None):
        return value is None
    if origin is not None:
        return _fits_generic(value, origin, args)
    if isinstance(hint, type):
        return _fits_class(value, hint)
    return True


def describe(hint: Any) -> str:
    """A type hint in words, for messages (``"an integer >= 1"``)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is Annotated:
        bounds = " ".join(m.words() for m in hint.__metadata__ if isinstance(m, Range))
        return f"{describe(args[0])} {bounds}".strip()
    if origin is Union or origin is types.UnionType:
        return " or ".join(dict.fromkeys(describe(a) for a in args))
    if origin is Literal:
        return " or ".join(json.dumps(a) if isinstance(a, (str, int, bool)) else repr(a) for a in args)
    if hint is None or hint is type(None):
        return "null"
    if origin in (collections.abc.Sequence, list, tuple, collections.abc.Iterable):
        return f"a list of {describe(args[0]).removeprefix('a ').removeprefix('an ')}s" if args else "a list"
    if origin in (collections.abc.Mapping, dict, collections.abc.MutableMapping):
        return "an object (dict)"
    if origin is collections.abc.Callable:
        return "a function"
    if origin is os.PathLike:
        return "a path"
    if getattr(hint, "_is_protocol", False):
        return f"{_a(hint.__name__)} (an object with {', '.join(f'{m}()' for m in _protocol_methods(hint))})"
    return _WORDS.get(hint, _a(getattr(hint, "__name__", str(hint))))


def _a(name: str) -> str:
    return f"{'an' if name[:1] in 'AEIOUaeiou' else 'a'} {name}"


def short_repr(value: Any, limit: int = 60) -> str:
    """``repr(value)`` cut to ``limit`` characters, for one-line messages."""
    try:
        text = repr(value)
    except RecursionError:
        return f"<{type(value).__name__} nested too deeply to show>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _example(hint: Any, default: Any) -> Any:
    """A value that fits ``hint``: the default where it is a plain JSON value, else one per type."""
    if default is not inspect.Parameter.empty and default is not None and fits(default, hint):
        if isinstance(default, (bool, int, float, str)):
            return default
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is Annotated:
        lows = [m.low + m.exclusive_low for m in hint.__metadata__ if isinstance(m, Range) and m.low is not None]
        return max(_example(args[0], inspect.Parameter.empty), *lows)
    if origin is Union or origin is types.UnionType:
        plain = [a for a in args if a is not type(None)]
        if any(typing.get_origin(a) is os.PathLike for a in plain):
            return "path/to/file"
        examples = [e for e in (_example(a, inspect.Parameter.empty) for a in plain) if e is not ...]
        return examples[0] if examples else (... if plain else None)
    if origin is Literal:
        return args[0]
    if origin in (collections.abc.Sequence, list, tuple):
        return [_example(args[0], inspect.Parameter.empty)] if args else []
    if origin in (collections.abc.Mapping, dict):
        return {}
    return _EXAMPLES.get(hint, ...)


@functools.cache  # constructors are few; evaluating their hints is not free
def _hints(target: Callable[..., Any]) -> dict[str, Any]:
    """The evaluated hints of ``target``.

    A hint that cannot be evaluated at run time (a name imported only for type checkers) is
    left out.
    """
    target = inspect.unwrap(target)
    try:
        return typing.get_type_hints(target, include_extras=True)
    except (NameError, TypeError, AttributeError):
        pass
    namespace = dict(getattr(target, "__globals__", {}))
    hints: dict[str, Any] = {}
    for name, text in getattr(target, "__annotations__", {}).items():
        try:
            hints[name] = eval(text, namespace) if isinstance(text, str) else text  # noqa: S307 - the module's own annotation
        except Exception:  # noqa: BLE001 - an annotation that does not evaluate at run time is not checked
            continue
    return hints


def _message(owner: str, name: str, hint: Any, value: Any, default: Any) -> str:
    text = f"{owner}: argument {name} must be {describe(hint)}, got {short_repr(value)} ({type(value).__name__})"
    example = _example(hint, default)
    if example is ...:
        return text + "; it is a Python object, so pass it from Python, not as JSON"
    return text + f"; e.g. {json.dumps({name: example})}"


def check_arguments(target: Callable[..., Any], kwargs: Mapping[str, Any], owner: str) -> None:
    """Raise :class:`InvalidConfig` for the first value in ``kwargs`` that does not fit ``target``'s hints.

    Args:
        target: A function, or a class (the ``__init__`` of it and of its bases); arguments
            they do not name are left alone.
        kwargs: The keyword arguments to check.
        owner: Who takes them, for the message (``"policy 'rag'"``).

    Raises:
        InvalidConfig: ``"<owner>: argument top_k must be an integer >= 1, got -3 (int); e.g. {"top_k": 3}"``.
    """
    if isinstance(target, type):  # each __init__ up the class tree checks the arguments it names
        for cls in target.__mro__:
            if "__init__" in vars(cls) and cls is not object:
                check_arguments(vars(cls)["__init__"], kwargs, owner)
        return
    hints = _hints(target)
    try:
        params = inspect.signature(target).parameters
    except (TypeError, ValueError):  # a builtin without a signature
        return
    for name, value in kwargs.items():
        if name in hints and name in params and not fits(value, hints[name]):
            raise InvalidConfig(_message(owner, name, hints[name], value, params[name].default))


_C = TypeVar("_C", bound=type)


def checked_init(cls: _C, owner: Callable[[Any], str]) -> _C:
    """Wrap ``cls.__init__`` (if the class defines one) so that its arguments are checked first.

    Args:
        cls: The class.
        owner: Names the instance's kind for messages, e.g. ``lambda self: type(self).__name__``.

    Returns:
        ``cls``.
    """
    init = cls.__dict__.get("__init__")
    if init is None or getattr(init, "_checked", False):
        return cls
    signature = inspect.signature(init)

    @functools.wraps(init)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        try:
            bound = signature.bind_partial(self, *args, **kwargs).arguments
        except TypeError:
            bound = {}  # wrong arity: the call itself says so
        given = {k: v for k, v in bound.items() if k != "self" and signature.parameters[k].kind not in _VARIADIC}
        check_arguments(init, given, owner(self))
        init(self, *args, **kwargs)

    __init__._checked = True  # type: ignore[attr-defined]  # a marker on the function object
    cls.__init__ = __init__  # type: ignore[misc]  # replacing the method is the point
    return cls


_VARIADIC = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
