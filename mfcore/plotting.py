"""Figure style for the whole book, set once here.

Every notebook calls :func:`set_style` (it is also called on ``import mfcore``) so that figures share
one seaborn theme and one colour-blind-safe palette.
"""
from __future__ import annotations

import matplotlib as mpl
import seaborn as sns

#: Colour-blind-safe qualitative palette (seaborn's ``colorblind``, from Okabe-Ito style hues).
PALETTE_NAME = "colorblind"


def set_style(context: str = "notebook") -> None:
    """Apply the book's seaborn theme and colour-blind-safe palette to matplotlib."""
    sns.set_theme(context=context, style="whitegrid", palette=PALETTE_NAME)
    mpl.rcParams.update(
        {
            "figure.dpi": 110,
            "savefig.dpi": 110,
            "figure.figsize": (6.4, 4.0),
            "axes.titlesize": "medium",
            "legend.frameon": False,
        }
    )


def palette(n: int):
    """``n`` colours of the book's colour-blind-safe palette (cycled if ``n`` exceeds its size)."""
    return sns.color_palette(PALETTE_NAME, n_colors=n)


def sequential(n: int):
    """``n`` colours of a perceptually uniform sequential map (for ordered series such as widths)."""
    return sns.color_palette("viridis", n_colors=n)
