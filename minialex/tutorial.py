"""What the tutorials in ``tutorials/`` share: the fast mode and where their figures go.

    from minialex.tutorial import FAST, IN_NOTEBOOK, IMAGES, save   # before matplotlib.pyplot

* Importing this module chooses matplotlib's ``Agg`` backend (draw into PNG files, open no window)
  when the tutorial runs as a plain script; in a notebook the figures appear below their cell.
* ``FAST``: True when ``MINIALEX_TUTORIAL_FAST=1``, which the test suite sets: tutorials then use
  smaller sizes, so that all twelve run in a couple of minutes.
* ``IMAGES``: the folder the figures are written to, ``images/`` next to the tutorial (the current
  folder's ``images/`` in a notebook), or ``MINIALEX_TUTORIAL_IMAGES`` when set (the tests use it).
* ``save(fig, name)`` writes ``IMAGES/name``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import matplotlib

IN_NOTEBOOK = "ipykernel" in sys.modules
if not IN_NOTEBOOK:
    matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

FAST = os.environ.get("MINIALEX_TUTORIAL_FAST") == "1"


def _images_dir() -> Path:
    if "MINIALEX_TUTORIAL_IMAGES" in os.environ:
        return Path(os.environ["MINIALEX_TUTORIAL_IMAGES"])
    script = getattr(sys.modules["__main__"], "__file__", None)      # None in a notebook
    return (Path(script).resolve().parent if script else Path.cwd()) / "images"


IMAGES = _images_dir()
IMAGES.mkdir(parents=True, exist_ok=True)


def save(fig, name: str):
    """Write the figure to IMAGES/name (in a notebook it is also shown below the cell)."""
    fig.savefig(IMAGES / name, dpi=90, bbox_inches="tight")
    if not IN_NOTEBOOK:
        plt.close(fig)
