"""``agemem view``: turn episode recordings into one self-contained HTML page."""

from __future__ import annotations

import argparse

HELP = "write an HTML page that steps through recorded episodes (agemem run/eval/train --record DIR)"


def configure(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``agemem view``."""
    parser.add_argument(
        "files", nargs="+", metavar="FILE", help="recordings (.jsonl) or folders of them (or of rank<r> subfolders)"
    )
    parser.add_argument("--out", default="report.html", help="the HTML file to write (default: report.html)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    parser.add_argument("--title", default=None, help="page title (default: the env id and task)")


def main(args: argparse.Namespace) -> int:
    """Read the recordings and write the page."""
    from agemem_gym.commands._outputs import check_output_file
    from agemem_gym.viewer import write_report

    check_output_file(args.out, "--out", overwrite=args.overwrite, example="report.html")
    path = write_report(args.files, args.out, title=args.title)
    print(f"wrote {path} (open it in a browser; it needs no network)")
    return 0
