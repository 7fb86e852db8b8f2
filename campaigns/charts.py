"""Chart conventions shared by every page: the colour palette and Plotly figure helpers.

The palette is Okabe-Ito (Okabe and Ito, 2008), distinguishable with the common colour-vision
deficiencies. It lives here only: server-built Plotly figures get it as their ``colorway``
through :func:`figure_layout`, and pages that colour table swatches take colours from
:data:`PALETTE` too. ``static/js/charts.js`` draws every ``[data-plotly-figure]`` element.
"""

from __future__ import annotations

from typing import Any

BLUE = "#0072B2"
ORANGE = "#E69F00"
GREEN = "#009E73"
VERMILION = "#D55E00"
PURPLE = "#CC79A7"
SKY_BLUE = "#56B4E9"
YELLOW = "#F0E442"
BLACK = "#000000"
GREY = "#999999"  # "no coupon" and other neutral marks, beside the palette's hues

PALETTE = [BLUE, ORANGE, GREEN, VERMILION, PURPLE, SKY_BLUE, YELLOW, BLACK]


def palette_colour(index: int) -> str:
    """The palette's colour for the index-th series (wrapping around)."""
    return PALETTE[index % len(PALETTE)]


def figure_layout(*, title: str, x_title: str, y_title: str, **extra: Any) -> dict[str, Any]:
    """A Plotly layout with a title, axis titles (say the unit in them) and the palette."""
    layout: dict[str, Any] = {
        "title": {"text": title},
        "colorway": PALETTE,
        "xaxis": {"title": {"text": x_title}, "automargin": True},
        "yaxis": {"title": {"text": y_title}, "automargin": True},
        "legend": {"orientation": "h", "y": -0.25},
        "margin": {"t": 60, "r": 20, "b": 60, "l": 70},
        "height": 400,
    }
    layout.update(extra)
    return layout
