"""What the tutorials in ``tutorials/`` share: the fast mode and where their figures go.

    from minialex.tutorial import FAST, IN_NOTEBOOK, IMAGES, save   # before matplotlib.pyplot

* Importing this module chooses matplotlib's ``Agg`` backend (draw into PNG files, open no window)
  when the tutorial runs as a plain script; in a notebook the figures appear below their cell.
* ``FAST``: True when ``MINIALEX_TUTORIAL_FAST=1``, which the test suite sets: tutorials then use
  smaller sizes, so that all twelve run in a couple of minutes.
* ``IMAGES``: the folder the figures are written to, ``images/`` next to the tutorial (the current
  folder's ``images/`` in a notebook), or ``MINIALEX_TUTORIAL_IMAGES`` when set (the tests use it).
* ``save(fig, name)`` writes ``IMAGES/name``.
* ``sample_photo(size)``: the photograph that comes with matplotlib, as a float32 (size, size, 3)
  array of 0-255 values: a real image with no download (tutorials 06 and 08).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import matplotlib
import matplotlib.cbook
import matplotlib.image
import numpy as np

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


def sample_photo(size: int):
    """Grace Hopper (600x512 RGB, uint8), centre-cropped to a square, resized bilinearly to size x size."""
    image = matplotlib.image.imread(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
    H, W = image.shape[:2]
    top = (H - W) // 2
    image = image[top:top + W].astype(np.float32)                     # (512, 512, 3)
    src = (np.arange(size) + 0.5) * W / size - 0.5                    # where each output pixel samples
    i0 = np.clip(np.floor(src).astype(int), 0, W - 2)
    f = np.clip(src - i0, 0, 1)
    rows = image[i0] * (1 - f)[:, None, None] + image[i0 + 1] * f[:, None, None]              # (size, W, 3)
    return rows[:, i0] * (1 - f)[None, :, None] + rows[:, i0 + 1] * f[None, :, None]         # (size, size, 3)
