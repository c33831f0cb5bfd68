"""The package's shape, read from its source text (nothing is imported).

These checks keep the structure from drifting apart again: small modules, short functions,
one home for the six tool names (the tool table and the prompt that shows it), and one
direction between the rooms (bridges in ``adapters/`` may use ``policies/``, never the reverse).
Each test lists every offender, with file and line, so one run shows all that is left to fix.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "agemem_gym"

MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 60

TOOL_NAMES = ("Add_memory", "Update_memory", "Delete_memory", "Retrieve_memory", "Summary_context", "Filter_context")
# the table declares each tool once; the prompt module writes the names into the system prompt
TOOL_NAME_HOMES = {"agemem_gym/tools/table.py", "agemem_gym/tools/prompt.py"}
_TOOL_NAME = re.compile(r"\b(?:" + "|".join(TOOL_NAMES) + r")\b")

_ADAPTERS = "agemem_gym.adapters"


def _modules(under: Path = PACKAGE) -> list[Path]:
    return sorted(p for p in under.rglob("*.py") if "__pycache__" not in p.parts)


def _rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def _parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _functions(tree: ast.AST) -> Iterator[ast.FunctionDef | ast.AsyncFunctionDef]:
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node


def _function_lines(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """From the ``def`` line to the last line of the body (decorators not counted)."""
    assert node.end_lineno is not None
    return node.end_lineno - node.lineno + 1


def _string_literals(tree: ast.AST) -> Iterator[ast.Constant]:
    """Every ``str`` constant that is not a docstring, f-strings' constant parts included.

    A string standing alone as a statement (a module, class, function or attribute
    docstring) documents; it is not a value the program uses, so it is left out.
    """
    docs = {
        id(node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)
    }
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs:
            yield node


def _tool_name_literals(path: Path) -> list[str]:
    nodes = sorted(_string_literals(_parse(path)), key=lambda n: (n.lineno, n.col_offset))
    return [f"{_rel(path)}:{node.lineno}: {match}" for node in nodes for match in _TOOL_NAME.findall(node.value)]


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported(node: ast.Import | ast.ImportFrom, module: str, is_package: bool) -> list[str]:
    """The absolute names an import statement brings in (relative imports resolved)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:
        package = module.split(".") if is_package else module.split(".")[:-1]
        anchor = package[: len(package) - (node.level - 1)]
        base = ".".join([*anchor, base] if base else anchor)
    return [base, *(f"{base}.{alias.name}" for alias in node.names)]


def _imports_of(path: Path) -> Iterator[tuple[int, str]]:
    """``(line, name)`` for every import anywhere in the module and every string entry point.

    Function-level imports count: the rule is about which room may depend on which, not
    about import time. A ``"package.module:Name"`` string counts too, because a lookup
    table of such strings (like ``POLICIES``) imports them on use.
    """
    tree = _parse(path)
    module, is_package = _module_name(path), path.name == "__init__.py"
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            for name in _imported(node, module, is_package):
                yield node.lineno, name
    for node in _string_literals(tree):
        if re.fullmatch(r"[\w.]+(?::\w+)?", node.value):
            yield node.lineno, node.value.split(":")[0]


def _is_adapters(name: str) -> bool:
    return name == _ADAPTERS or name.startswith(_ADAPTERS + ".")


# --------------------------------------------------------------------------- the rules


def test_the_package_is_where_the_checks_look():
    assert len(_modules()) > 50 and (PACKAGE / "__init__.py").is_file()


def test_no_module_over_600_lines():
    too_long = [
        f"{_rel(p)}: {n} lines"
        for p in _modules()
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES
    ]
    assert not too_long, f"modules over {MAX_MODULE_LINES} lines (split by job):\n" + "\n".join(too_long)


def test_no_function_over_60_lines():
    too_long = [
        f"{_rel(p)}:{f.lineno} {f.name}: {_function_lines(f)} lines"
        for p in _modules()
        for f in _functions(_parse(p))
        if _function_lines(f) > MAX_FUNCTION_LINES
    ]
    assert not too_long, f"functions over {MAX_FUNCTION_LINES} lines (split into short pure functions):\n" + "\n".join(
        too_long
    )


def test_tool_names_are_spelled_only_in_the_tool_table_and_prompt():
    stray = [hit for p in _modules() if _rel(p) not in TOOL_NAME_HOMES for hit in _tool_name_literals(p)]
    assert not stray, (
        "tool names written as string literals outside "
        + ", ".join(sorted(TOOL_NAME_HOMES))
        + " (import the name constants from agemem_gym.tools):\n"
        + "\n".join(stray)
    )


def test_policies_never_import_adapters():
    upward = [
        f"{_rel(p)}:{line}: {name}"
        for p in _modules(PACKAGE / "policies")
        for line, name in _imports_of(p)
        if _is_adapters(name)
    ]
    assert not upward, "policies/ must not depend on adapters/ (bridges use policies, not the reverse):\n" + "\n".join(
        upward
    )


# --------------------------------------------------------------------------- the checkers themselves


def _write(tmp_path: Path, rel: str, source: str) -> Path:
    path = tmp_path / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(source, encoding="utf-8")
    return path


def test_literal_check_sees_fstrings_and_skips_docstrings(tmp_path):
    source = (
        '"""Module doc naming Add_memory."""\n'
        "class C:\n"
        '    """Class doc: Filter_context."""\n'
        "    x = 1\n"
        '    """Attribute doc: Update_memory."""\n'
        "def f(n):\n"
        '    """Function doc: Delete_memory."""\n'
        '    a = f"call Retrieve_memory {n}"\n'
        '    b = {"name": "Summary_context"}\n'
        '    c = "Add_memory_x and xAdd_memory are other words"\n'
        "    return a, b, c\n"
    )
    path = _write(tmp_path, "agemem_gym/m.py", source)
    hits = sorted(node.value for node in _string_literals(_parse(path)) if _TOOL_NAME.search(node.value))
    assert hits == ["Summary_context", "call Retrieve_memory "]


def test_import_check_resolves_relative_imports_and_entry_points(tmp_path, monkeypatch):
    monkeypatch.setitem(globals(), "ROOT", tmp_path)  # module names are read relative to ROOT
    source = (
        "import os\n"
        "from ..adapters import sb3\n"
        "from .. import adapters\n"
        "def f():\n"
        "    import agemem_gym.adapters.grpo\n"
        'TABLE = {"x": "agemem_gym.adapters.sb3.wrapper:MemoryControlWrapper"}\n'
    )
    path = _write(tmp_path, "agemem_gym/policies/mod.py", source)
    found = sorted({line for line, name in _imports_of(path) if _is_adapters(name)})
    assert found == [2, 3, 5, 6]
    init = _write(tmp_path, "agemem_gym/policies/__init__.py", "from .base import Policy\n")
    assert [name for _, name in _imports_of(init)] == ["agemem_gym.policies.base", "agemem_gym.policies.base.Policy"]
