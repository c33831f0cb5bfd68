"""A self-contained HTML viewer for recorded episodes (``agemem view``).

>>> from agemem_gym.viewer import write_report
>>> write_report(["recordings/"], "report.html")  # doctest: +SKIP
"""

from agemem_gym.viewer.model import episode_view, gold_spans
from agemem_gym.viewer.page import expand_paths, render_html, write_report

__all__ = ["episode_view", "expand_paths", "gold_spans", "render_html", "write_report"]
