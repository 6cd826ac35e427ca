"""Charts as PNG: horizontal bars per section, large fonts so they read on a phone.

The PNG is a 16-colour palette image (white, black, two bar colours and the grey edges of the
anti-aliased text), about 8 kB for the full mentorscan instead of about 45 kB in full colour: a chat
channel sends it inline as a ``data:`` URI and Teams refuses large activities (bot/channels/teams.py).
"""
from __future__ import annotations

import base64
import uuid
from io import BytesIO
from typing import Iterable, Optional

from bot.qa import Message
from bot.questionnaire import Results
from bot.settings import get_settings

# Enough for the bar colours and the anti-aliased edges of text; more only adds bytes.
PALETTE_COLORS = 16


def render_bars(labels: list[str], values: list[float], title: str, highlight: Iterable[str] = ()) -> bytes:
    """Bars on a 1-5 scale; labels in ``highlight`` (the lowest) are drawn in orange."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    marked = set(highlight)
    colors = ["#d9822b" if label in marked else "#2b7bb9" for label in labels]
    fig, ax = plt.subplots(figsize=(6.4, 0.62 * len(labels) + 1.4), dpi=110)
    bars = ax.barh(labels[::-1], values[::-1], color=colors[::-1])
    for bar, value in zip(bars, values[::-1]):
        ax.text(bar.get_width() + 0.05, bar.get_y() + bar.get_height() / 2,
                f"{value:.1f}".replace(".", ","), va="center", fontsize=12)
    ax.set_xlim(0, 5.6)
    ax.set_xticks([1, 2, 3, 4, 5])
    ax.tick_params(labelsize=12)
    ax.set_title(title, fontsize=13)
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    fig.canvas.draw()
    pixels = np.asarray(fig.canvas.buffer_rgba())
    plt.close(fig)
    return palette_png(pixels)


def palette_png(rgba) -> bytes:
    """An RGBA pixel array as a small palette PNG (no dithering: flat bars stay flat)."""
    from PIL import Image

    image = Image.fromarray(rgba).convert("RGB")
    paletted = image.quantize(colors=PALETTE_COLORS, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    buffer = BytesIO()
    paletted.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def render_png(result: Results) -> Optional[bytes]:
    """The mentor's section averages, lowest highlighted; None without scored sections."""
    scored = [r for r in result.sections if r.average is not None]
    if not scored:
        return None
    labels = [r.section.id + (f" {r.section.chapter.title}" if r.section.chapter else "") for r in scored]
    lowest = {labels[i] for i, r in enumerate(scored) if r in result.lowest}
    return render_bars(labels, [r.average for r in scored], f"{result.questionnaire.title}: gemiddelde per onderdeel", lowest)


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode()


def chart_message(result: Results, channel: str) -> Optional[Message]:
    """The chart as an image message: a data URI for chat channels, a file for the terminal."""
    png = render_png(result)
    if png is None:
        return None
    if channel == "cmdline":
        directory = get_settings().charts_dir
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"{uuid.uuid4().hex}.png"
        path.write_bytes(png)
        return Message(f"Je grafiek staat in {path}")
    return Message("Je resultaten in een grafiek:", image=data_uri(png))
