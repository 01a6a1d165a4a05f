"""The report's PNG plots (matplotlib, Agg: no display, no pyplot global state).

Each ``*_figure`` function draws one figure from the numbers in host.report_data;
``save`` writes it as PNG and returns its file name, pixel size and panel count
(``len(fig.axes)``, colour bars included), which the HTML records so tests can
check every image.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # before any pyplot import anywhere: no display on a gateway
# matplotlib logs its own choices at INFO (e.g. "Using categorical units"): noise for a report's
# reader at the default log level; its warnings still show.
logging.getLogger("matplotlib").setLevel(logging.WARNING)

from matplotlib.figure import Figure  # noqa: E402

from host.notes import Note  # noqa: E402
from host.report_data import KIND_NAMES, DayNight, MarkerMatch, Window  # noqa: E402

DPI = 100
KIND_COLOURS = {"myoclonic": "#4C72B0", "clonic": "#DD8452", "tonic": "#C44E52"}
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


@dataclass(frozen=True)
class Plot:
    file: str
    title: str
    panels: int
    width: int
    height: int


def save(fig: Figure, out_dir: Path, name: str, title: str) -> Plot:
    path = out_dir / f"{name}.png"
    fig.savefig(path, dpi=DPI, format="png")
    w, h = fig.get_size_inches() * DPI
    return Plot(f"{out_dir.name}/{path.name}", title, len(fig.axes), round(w), round(h))


def per_day_figure(rows: list[tuple[dt.date, dict[str, int]]]) -> Figure:
    fig = Figure(figsize=(9, 3.6), layout="constrained")
    ax = fig.add_subplot()
    x = list(range(len(rows)))
    bottom = [0] * len(rows)
    for kind in KIND_NAMES:
        vals = [r[kind] for _, r in rows]
        ax.bar(x, vals, bottom=bottom, label=kind, color=KIND_COLOURS[kind])
        bottom = [b + v for b, v in zip(bottom, vals, strict=True)]
    step = max(1, len(rows) // 14)
    ax.set_xticks(x[::step], [d.strftime("%a %d %b") for d, _ in rows][::step], rotation=45)
    ax.set_ylabel("spasms per day")
    ax.legend(loc="upper left", fontsize="small")
    return fig


def day_night_figure(dn: DayNight) -> Figure:
    fig = Figure(figsize=(7, 3.2), layout="constrained")
    a1, a2 = fig.subplots(1, 2)
    labels = ["day", "sleep hours"]
    colours = ["#E1B12C", "#273C75"]
    a1.bar(labels, [dn.day_count, dn.night_count], color=colours)
    a1.set_ylabel("spasms")
    a1.set_title("count")
    a2.bar(labels, [dn.day_rate, dn.night_rate], color=colours)
    a2.set_ylabel("spasms per hour")
    a2.set_title("rate")
    return fig


def distributions_figure(durations_s: list[float], severities: list[int]) -> Figure:
    fig = Figure(figsize=(8, 3.2), layout="constrained")
    a1, a2 = fig.subplots(1, 2)
    a1.hist(durations_s or [0.0], bins=20, color="#4C72B0", alpha=1.0 if durations_s else 0.0)
    a1.set_xlabel("duration (s)")
    a1.set_ylabel("spasms")
    a1.set_title("duration")
    a2.bar(["1", "2", "3"], [severities.count(s) for s in (1, 2, 3)], color="#C44E52")
    a2.set_xlabel("severity (band's scale 1-3)")
    a2.set_title("severity")
    return fig


def heatmap_figure(grid: list[list[int]]) -> Figure:
    fig = Figure(figsize=(9, 3.2), layout="constrained")
    ax = fig.add_subplot()
    im = ax.imshow(grid, aspect="auto", cmap="viridis", interpolation="nearest")
    ax.set_yticks(range(7), WEEKDAYS)
    ax.set_xticks(range(0, 24, 2), [f"{h:02d}" for h in range(0, 24, 2)])
    ax.set_xlabel("hour of day (local)")
    fig.colorbar(im, ax=ax, label="spasms")
    return fig


def markers_figure(m: MarkerMatch) -> Figure:
    fig = Figure(figsize=(7, 3.2), layout="constrained")
    ax = fig.add_subplot()
    labels = ["felt (button)", "felt and detected", "detected", "detected and marked"]
    vals = [m.markers, m.markers_caught, m.events, m.events_marked]
    bars = ax.bar(labels, vals, color=["#8C7AE6", "#9C88FF", "#44BD32", "#4CD137"])
    ax.bar_label(bars)
    ax.set_ylabel("count")
    ax.tick_params(axis="x", labelsize="small")
    return fig


def before_after_figure(items: list[tuple[Note, Window, Window]], tz: dt.tzinfo) -> Figure:
    """Two panels per note: rate with a 95 % interval, and mean severity."""
    n = len(items)
    fig = Figure(figsize=(8, 2.6 * n), layout="constrained")
    axes = fig.subplots(n, 2, squeeze=False)
    for row, (note, before, after) in zip(axes, items, strict=True):
        a1, a2 = row
        rates = [before.rate, after.rate]
        ivs = [before.rate_interval(), after.rate_interval()]
        err = [
            [r - lo for r, (lo, _) in zip(rates, ivs, strict=True)],
            [hi - r for r, (_, hi) in zip(rates, ivs, strict=True)],
        ]
        a1.bar(["before", "after"], rates, yerr=err, capsize=6, color=["#7F8FA6", "#40739E"])
        when = dt.datetime.fromtimestamp(note.utc_ms / 1000, tz).strftime("%d %b %H:%M")
        a1.set_title(f"{note.kind} {when}: spasms/hour, 95 % interval", fontsize="small")
        sev = [before.mean_severity or 0.0, after.mean_severity or 0.0]
        a2.bar(["before", "after"], sev, color=["#7F8FA6", "#40739E"])
        a2.set_ylim(0, 3)
        a2.set_title("mean severity (1-3)", fontsize="small")
    return fig
