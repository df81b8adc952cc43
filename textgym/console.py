"""What the command line shows: our own progress and results, not the libraries' chatter.

The ``textgym`` commands call :func:`quiet_libraries` unless ``--verbose`` is given, so a run
prints its own progress bars, tables and samples, and not transformers' "Loading weights" /
"Writing model shards" bars, hub download bars, or third-party warnings. The Python API leaves
the libraries as the user configured them.
"""

from __future__ import annotations

import os
import sys
import warnings

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
