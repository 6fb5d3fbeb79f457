"""The digest chart: the week's pipeline movement per manager (matplotlib, Agg, no pyplot state).

Built with `matplotlib.figure.Figure` directly so it is thread-safe (the bot renders in worker
threads) and never needs a display.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

SERIES = (("deals_created", "Новые", "#4C78A8"), ("stage_moves", "Переходы по этапам", "#F2A541"),
          ("deals_won", "Выиграно", "#54A24B"), ("deals_lost", "Проиграно", "#E45756"))


def pipeline_chart(rows: Sequence[dict], title: str, width: float = 10.0, height: float = 5.6, dpi: int = 110) -> bytes:
    """PNG bytes: grouped bars per manager (`rows`: dicts with `name` and the SERIES keys)."""
    fig = Figure(figsize=(width, height), dpi=dpi)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    names = [str(r.get("name") or "—") for r in rows]
    if not rows or not any(int(r.get(k) or 0) for r in rows for k, _, _ in SERIES):
        ax.text(0.5, 0.5, "За неделю движения по воронке не было", ha="center", va="center", fontsize=14,
                transform=ax.transAxes)
        ax.set_axis_off()
    else:
        n = len(SERIES)
        bar = 0.8 / n
        xs = range(len(rows))
        for j, (key, label, color) in enumerate(SERIES):
            vals = [int(r.get(key) or 0) for r in rows]
            pos = [x - 0.4 + bar * (j + 0.5) for x in xs]
            bars = ax.bar(pos, vals, bar, label=label, color=color)
            for rect, v in zip(bars, vals):
                if v:
                    ax.annotate(str(v), (rect.get_x() + rect.get_width() / 2, rect.get_height()),
                                ha="center", va="bottom", fontsize=8, xytext=(0, 1), textcoords="offset points")
        ax.set_xticks(list(xs))
        ax.set_xticklabels(names, rotation=20 if len(rows) > 4 else 0, ha="right" if len(rows) > 4 else "center")
        ax.set_ylabel("сделок / переходов")
        ax.legend(loc="upper right", fontsize=9, frameon=False)
        ax.spines["top"].set_visible(False)
        ax.spines["right"].set_visible(False)
        ax.yaxis.get_major_locator().set_params(integer=True)
    ax.set_title(title, fontsize=13)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def impact_chart(months: Sequence[str], volume: Sequence[float], last_year: Sequence[float | None],
                 rating: Sequence[float | None], title: str, width: float = 10.0, height: float = 5.2,
                 dpi: int = 110) -> bytes:
    """PNG bytes: won volume by month this year against the same month a year before (bars), and the
    mean rating of crmsum's answers (a line on its own 1–5 axis)."""
    fig = Figure(figsize=(width, height), dpi=dpi)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    xs = list(range(len(months)))
    ax.bar([x - 0.2 for x in xs], [v / 1e6 for v in volume], 0.4, label="Выиграно, млн ₽", color="#54A24B")
    ax.bar([x + 0.2 for x in xs], [(v or 0) / 1e6 for v in last_year], 0.4, label="Год назад, млн ₽",
           color="#BAB0AC")
    ax.set_xticks(xs)
    ax.set_xticklabels(months, rotation=30 if len(months) > 6 else 0, ha="right" if len(months) > 6 else "center")
    ax.set_ylabel("млн ₽")
    ax.spines["top"].set_visible(False)
    rated = [(x, r) for x, r in zip(xs, rating) if r is not None]
    if rated:
        ax2 = ax.twinx()
        ax2.plot([x for x, _ in rated], [r for _, r in rated], "o-", color="#4C78A8", label="Средняя оценка ответов")
        ax2.set_ylim(1, 5)
        ax2.set_ylabel("оценка 1–5")
        ax2.legend(loc="upper right", fontsize=9, frameon=False)
    ax.legend(loc="upper left", fontsize=9, frameon=False)
    ax.set_title(title, fontsize=13)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()
