"""The `workbench` command line: the only place with `main`s, argument parsing, printing and exit codes.

    workbench data  --data-dir ../shared/data/fashion-mnist   # verify the data, print class counts
    workbench train --recipe fast                             # train a model into runs/<run-id>/
    workbench evaluate RUN                                     # re-evaluate a run on the test set
    workbench serve                                            # the Dash app on 127.0.0.1:8050
    workbench predict shirt.jpg                                # classify image files
    workbench export RUN --format onnx                         # ONNX / TFLite export
    workbench embed RUN                                        # the 2-D embedding map of the test set
    workbench familiarity RUN                                  # flag inputs unlike the training images

Arguments live in workbench/cli/parser.py, each subcommand's handler in workbench/cli/commands.py,
the local multi-worker launcher in workbench/cli/launch.py. Every project error (a WorkbenchError)
is caught here once and printed as one line with exit code 2.
"""

from __future__ import annotations

import logging
import os
import sys

from model.errors import WorkbenchError
from workbench.cli.parser import build_parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # TensorFlow's C++ start-up chatter (oneDNN, CPU features) would bury our own messages on stderr.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    show_project_logs()
    try:  # Ctrl-C while the commands (and TensorFlow) are still being imported: one line too
        from workbench.cli import commands

        return int(getattr(commands, args.handler)(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except WorkbenchError as exc:  # a problem the user can act on: one line, no traceback
        print(f"error: {exc}", file=sys.stderr)
        return 2


class _Stderr(logging.StreamHandler):
    """A handler that writes to whatever sys.stderr is at the time (tests capture it per test)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value):
        pass


def show_project_logs() -> None:
    """The project's own log lines (resuming, exporting ...) on stderr as plain messages."""
    handler = _Stderr()
    handler.setFormatter(logging.Formatter("%(message)s"))
    for name in ("model", "workbench"):
        logger = logging.getLogger(name)
        if not logger.handlers:
            logger.addHandler(handler)
        logger.setLevel(logging.INFO)
