"""What the command line shows: our own progress and results, not the libraries' chatter.

The ``textgym`` commands call :func:`quiet_libraries` unless ``--verbose`` is given, so a run
prints its own progress bars, tables and samples, and not transformers' "Loading weights" /
"Writing model shards" bars, hub download bars, or third-party warnings. The Python API leaves
the libraries as the user configured them. Every command's parser is a :class:`OneLineParser`
and its tables come from :func:`format_table`, whichever package declares the command.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from typing import Any, NoReturn

OUR_PACKAGES = ("textgym", "agents")


def quiet_libraries() -> None:
    """Hide third-party progress bars, info logs and warnings for the rest of this process.

    Environment variables cover libraries not imported yet; the calls cover those already
    imported. Warnings raised from textgym's or the agents' own code still show.
    """
    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    os.environ["TRANSFORMERS_VERBOSITY"] = "error"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TensorBoard's writer may pull in TensorFlow's logs
    if "transformers" in sys.modules:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
    if "huggingface_hub" in sys.modules:
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()
    warnings.filterwarnings("ignore")
    for package in OUR_PACKAGES:
        warnings.filterwarnings("default", module=rf"{package}(\.|$)")


def format_table(rows: list[list[str]]) -> str:
    """Left-aligned columns with a rule under the header row.

    >>> print(format_table([["a", "bb"], ["ccc", "d"]]))
    a    bb
    ---  --
    ccc  d
    """
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


class OneLineParser(argparse.ArgumentParser):
    """argparse, with its errors as one ``error:`` line (no usage block) and exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")

    def _get_values(self, action: argparse.Action, arg_strings: list[str]) -> Any:
        # An empty (or blank) value for a text option or argument: a file, folder, model or id that is missing,
        # named here; otherwise "" reads as "not given" downstream and the default is used silently.
        if action.type in (None, str) and action.choices is None and any(
                isinstance(s, str) and not s.strip() for s in arg_strings):
            self.error(f"argument {'/'.join(action.option_strings) or action.metavar or action.dest}: must not be empty")
        return super()._get_values(action, arg_strings)
