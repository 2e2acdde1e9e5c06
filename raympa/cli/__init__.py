"""The ``raympa`` command line: a thin argparse front over the library.

Each module of this package owns some subcommands: their flags beside their handlers, heavy
imports (torch, ray, librosa) inside the handlers only, so ``raympa --help`` stays cheap. A
handler takes the parsed ``argparse.Namespace`` and returns an exit code; no module outside this
package knows argparse.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence

# the subcommand modules, in the order of ``raympa --help`` (each has ``register(sub)``)
COMMAND_MODULES = ("data", "contours", "train", "predict", "report", "study")


def build_parser() -> argparse.ArgumentParser:
    """The ``raympa`` parser with every subcommand."""
    from raympa import __version__

    parser = argparse.ArgumentParser(
        prog="raympa",
        description="Music performance assessment with contrastive learning, run as a Ray study.")
    parser.add_argument("--version", action="version", version=f"raympa {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"raympa.cli.{name}").register(sub)
    for action in sub._choices_actions:  # each command's page opens with its one-line summary
        page = sub.choices[action.dest]
        page.description = page.description or action.help
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``raympa`` console script."""
    args = build_parser().parse_args(argv)
    return int(args.handler(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
