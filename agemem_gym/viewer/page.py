"""Assemble one self-contained HTML page from recorded episodes.

The page is a single file: the stylesheet, the script (both written for this project, in
``static/``) and the episode data are inlined; a Content-Security-Policy forbids every
network request. The data sits in a ``<script type="application/json">`` element with
``<``, ``>``, ``&`` and the JavaScript line separators escaped, and the script writes every
recorded text into the page as text, never as HTML, so whatever an agent said cannot run.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterable, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from agemem_gym.error import DataFormatError, InvalidConfig
from agemem_gym.version import __version__
from agemem_gym.viewer.model import episode_view
from agemem_gym.wrappers.episode import Episode, read_episode

__all__ = ["render_html", "write_report", "expand_paths"]

_CSP = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:"
_TEMPLATE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{csp}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="agemem-gym {version}">
<title>{title}</title>
<style>
{css}
</style>
</head>
<body>
<noscript>This page needs JavaScript to step through the episodes.</noscript>
<div id="app"></div>
<script type="application/json" id="agemem-data">{data}</script>
<script>
{js}
</script>
</body>
</html>
"""
_JSON_ESCAPES = str.maketrans(
    {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
)


def _asset(name: str) -> str:
    text = resources.files("agemem_gym.viewer").joinpath("static").joinpath(name).read_text(encoding="utf-8")
    if "</script" in text.lower() or "</style" in text.lower():  # would end the inline element early
        raise InvalidConfig(f"viewer asset {name} must not contain a closing script/style tag")
    return text


def _embed_json(data: Any) -> str:
    """JSON that is inert inside a ``<script>`` element (no tag or line-separator can end it).

    Text with lone surrogates (an agent may write them; the recorder keeps them) has no UTF-8
    form: the JSON then escapes every non-ASCII character, and the page's ``JSON.parse`` gives
    back the same string.
    """
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    if not _encodable(text):
        text = json.dumps(data, ensure_ascii=True, separators=(",", ":"), allow_nan=False)
    return text.translate(_JSON_ESCAPES)


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _html_text(text: str) -> str:
    """``text`` escaped for HTML, lone surrogates shown as U+FFFD (the file is UTF-8)."""
    return html.escape("".join("\ufffd" if "\ud800" <= c <= "\udfff" else c for c in text))


def render_html(episodes: Sequence[Episode], title: str | None = None) -> str:
    """The viewer page for ``episodes`` as one HTML string.

    Two episodes open side by side (e.g. two rollouts of one GRPO group, or one task before
    and after training); more can be picked per pane.

    Args:
        episodes: Recordings read with :func:`~agemem_gym.wrappers.episode.read_episode`.
        title: Page title (default: the env id and the task ids).

    Returns:
        The page.
    """
    if not episodes:
        raise InvalidConfig("render_html needs at least one episode")
    if title is None:
        tasks = list(dict.fromkeys(str(e.task.get("task_id")) for e in episodes))
        title = f"{episodes[0].env_id} · " + (tasks[0] if len(tasks) == 1 else f"{len(tasks)} tasks")
    views = [episode_view(e, name) for e, name in zip(episodes, _labels(episodes))]
    data = {"title": title, "version": __version__, "episodes": views}
    return _TEMPLATE.format(
        csp=_CSP,
        version=html.escape(__version__),
        title=_html_text(title),
        css=_asset("viewer.css"),
        js=_asset("viewer.js"),
        data=_embed_json(data),
    )


def _labels(episodes: Sequence[Episode]) -> list[str]:
    """File names, with the folder in front where two files share a name."""
    names = [e.path.name if e.path else f"episode {i}" for i, e in enumerate(episodes)]
    if len(set(names)) == len(names):
        return names
    return [f"{e.path.parent.name}/{e.path.name}" if e.path else n for e, n in zip(episodes, names)]


def expand_paths(paths: Iterable[str | Path]) -> list[Path]:
    """Files as given; a directory stands for the ``*.jsonl`` files in it, in name order.

    A directory without any stands for those of its subfolders: ``agemem train --record DIR``
    writes ``DIR/rank<r>/*.jsonl``, one subfolder per process.
    """
    out: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(path.glob("*.jsonl")) or sorted(path.glob("*/*.jsonl"))
            if not found:
                raise DataFormatError(f"{path}: no .jsonl recordings in this directory or its subfolders")
            out.extend(found)
        else:
            out.append(path)
    return out


def write_report(paths: Iterable[str | Path], out: str | Path, title: str | None = None) -> Path:
    """Read recordings (files or directories) and write the viewer page to ``out``.

    Args:
        paths: Recording files, or directories of them.
        out: The HTML file to write (its folder is created).
        title: Page title.

    Returns:
        The written path.
    """
    episodes = [read_episode(p) for p in expand_paths(paths)]
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_html(episodes, title), encoding="utf-8")
    return out
