"""`spasm-bridge report --band B --since ... --until ... --out report.html`: a clinic record.

Writes ``report.html`` and its PNG plots in ``report_files/`` next to it (the
HTML links them relatively, so the pair can be zipped or printed). Contents:
spasms per day by kind; day versus sleep hours; distributions of duration and
severity; a time-of-day heat map; patient markers against detected events (with
the matching window stated); before/after each medication or therapy note with
counts, hours, a 95 % interval and a plain statement of uncertainty; and, visibly,
that this is a record, not a diagnosis. Every number in the HTML carries a
``data-key`` attribute and every plot its panel count (``data-panels``), for tests
and for anyone checking the numbers.
"""

from __future__ import annotations

import argparse
import datetime as dt
import html
import sys
from collections.abc import Sequence
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from host.alert_config import parse_sleep_hours
from host.config import Config, ConfigError, check_band_id, load, parse_set
from host.notes import NoteError, parse_when
from host.report_data import (
    KIND_NAMES,
    MAX_DAYS,
    ReportData,
    ReportError,
    before_after,
    day_night,
    from_influx,
    from_spool,
    heatmap,
    kind_counts,
    match_markers,
)
from host.report_plots import (
    Plot,
    before_after_figure,
    day_night_figure,
    distributions_figure,
    heatmap_figure,
    markers_figure,
    per_day_figure,
    save,
)

DISCLAIMER = (
    "This is a record of what a wearable band detected and what was entered, not a diagnosis. "
    "The band can miss spasms and can mistake other movement for one."
)
UNCERTAINTY = (
    "Counts over a few hours or days vary a lot by chance alone. The interval shown is a 95 % "
    "interval for the rate from the count alone (exact Poisson); where the before and after "
    "intervals overlap, these data cannot tell the two rates apart. Sleep, activity, other "
    "treatments and how the band was worn change between the two windows as well, so a "
    "difference is not evidence of what caused it."
)
MAX_NOTE_PLOTS = 20


REPORT_HELP = f"""\
Write an HTML report with PNG plots for one band over a period, from the spool
(default; it holds what spool.keep_hours keeps once sinks delivered it) or from
InfluxDB (--source influx: influx.url/org/bucket and SPASM_INFLUX_TOKEN).
Times: YYYY-MM-DD (midnight UTC) or an ISO 8601 date-time; no offset means UTC.
The period is [since, until), at most {MAX_DAYS} days.
"""


def add_report_parser(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    parents: Sequence[argparse.ArgumentParser] = (),
) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "report",
        parents=list(parents),
        help="write an HTML report with plots for one band",
        description=REPORT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--band", required=True, help="band id")
    p.add_argument("--since", required=True, help="start of the period (inclusive)")
    p.add_argument("--until", default="now", help='end of the period (exclusive; default "now")')
    p.add_argument("--out", required=True, help="HTML file to write; plots go to <name>_files/")
    p.add_argument("--source", choices=("spool", "influx"), default="spool", help="data source")
    p.add_argument(
        "--timezone",
        default=None,
        help="IANA zone for days and hours (default: alerts.timezone if configured, else UTC)",
    )
    p.add_argument(
        "--sleep-hours",
        default=None,
        help='local sleep hours, e.g. "22:00-07:00" '
        "(default: alerts.sleep_hours if configured, else 22:00-07:00)",
    )
    p.add_argument(
        "--match-before-s",
        type=float,
        default=120.0,
        help="a button press matches a spasm that began up to this long before (120)",
    )
    p.add_argument(
        "--match-after-s", type=float, default=30.0, help="... or up to this long after it (30)"
    )
    p.add_argument(
        "--window-h",
        type=float,
        default=24.0,
        help="hours before and after each medication/therapy note compared (24)",
    )
    return p


def _td(key: str, value: object) -> str:
    text = f"{value:.2f}" if isinstance(value, float) else str(value)
    return f'<td data-key="{html.escape(key)}">{html.escape(text)}</td>'


def _fmt_ms(ms: int, tz: ZoneInfo) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, tz).strftime("%Y-%m-%d %H:%M")


def render(
    data: ReportData,
    out: Path,
    tz: ZoneInfo,
    sleep_hours: str,
    match_before_s: float = 120.0,
    match_after_s: float = 30.0,
    window_h: float = 24.0,
) -> list[Plot]:
    """Write ``out`` and its plots; return the plots written."""
    from host.report_data import per_day_by_kind

    files = out.parent / f"{out.stem}_files"
    files.mkdir(parents=True, exist_ok=True)
    days = per_day_by_kind(data, tz)
    dn = day_night(data, tz, sleep_hours)
    mm = match_markers(data, match_before_s, match_after_s)
    treat = [n for n in data.notes if n.kind in ("medication", "therapy")][:MAX_NOTE_PLOTS]
    ba = [(n, *before_after(data, n, window_h)) for n in treat]
    plots = [
        save(per_day_figure(days), files, "per_day", "Spasms per day by kind"),
        save(day_night_figure(dn), files, "day_night", f"Day versus sleep hours ({sleep_hours})"),
        save(
            distributions_figure(
                [e.duration_ms / 1000 for e in data.events], [e.severity for e in data.events]
            ),
            files,
            "distributions",
            "Duration and severity",
        ),
        save(heatmap_figure(heatmap(data, tz)), files, "heatmap", "Time of day by weekday"),
        save(markers_figure(mm), files, "markers", "Felt (button) versus detected"),
    ]
    if ba:
        plots.append(
            save(before_after_figure(ba, tz), files, "before_after", "Before and after notes")
        )

    e = html.escape
    kc = kind_counts(data)
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>Spasm record, band {e(data.band)}</title>",
        "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.2em .6em}"
        ".notice{border:2px solid #c44;padding:.6em;background:#fff4f4}</style></head><body>",
        f"<h1>Spasm record: band {e(data.band)}</h1>",
        f"<p class='notice' id='disclaimer'><strong>{e(DISCLAIMER)}</strong></p>",
        f"<p>Period {e(_fmt_ms(data.since_ms, tz))} to {e(_fmt_ms(data.until_ms, tz))} "
        f"({e(str(tz))}). Data from {e(data.source)}. Generated "
        f"{e(dt.datetime.now(dt.UTC).strftime('%Y-%m-%d %H:%M'))} UTC.</p>",
        "<h2>Summary</h2><table>",
        f"<tr><th>spasms detected</th>{_td('events_total', len(data.events))}</tr>",
        *(f"<tr><th>{k}</th>{_td('events_' + k, kc[k])}</tr>" for k in KIND_NAMES),
        f"<tr><th>button presses (felt)</th>{_td('markers_total', len(data.markers))}</tr>",
        f"<tr><th>notes</th>{_td('notes_total', len(data.notes))}</tr></table>",
    ]
    for p in plots:
        parts.append(
            f"<figure data-plot='{e(Path(p.file).stem)}' data-panels='{p.panels}' "
            f"data-width='{p.width}' data-height='{p.height}'><img src='{e(p.file)}' "
            f"alt='{e(p.title)}' width='{p.width}'><figcaption>{e(p.title)}</figcaption></figure>"
        )
    parts.append("<h2>Per day</h2><table><tr><th>day</th>")
    parts += [f"<th>{k}</th>" for k in KIND_NAMES] + ["<th>total</th></tr>"]
    for d, row in days:
        iso = d.isoformat()
        parts.append(f"<tr><td>{iso}</td>")
        parts += [_td(f"day_{iso}_{k}", row[k]) for k in KIND_NAMES]
        parts.append(_td(f"day_{iso}_total", sum(row.values())) + "</tr>")
    parts += [
        "</table>",
        f"<h2>Day versus sleep hours ({e(sleep_hours)}, {e(str(tz))})</h2><table>",
        "<tr><th></th><th>spasms</th><th>hours</th><th>per hour</th></tr>",
        f"<tr><th>day</th>{_td('day_count', dn.day_count)}{_td('day_hours', dn.day_hours)}"
        f"{_td('day_rate', dn.day_rate)}</tr>",
        f"<tr><th>sleep hours</th>{_td('night_count', dn.night_count)}"
        f"{_td('night_hours', dn.night_hours)}{_td('night_rate', dn.night_rate)}</tr></table>",
        "<h2>Felt versus detected</h2>",
        f"<p id='match-window'>A button press counts as a felt spasm the band caught when the band "
        f"detected a spasm that began between {mm.before_s:g} s before and {mm.after_s:g} s after "
        "the press; each detection pairs with at most one press.</p><table>",
        f"<tr><th>button presses</th>{_td('markers', mm.markers)}</tr>",
        f"<tr><th>... with a detected spasm</th>{_td('markers_caught', mm.markers_caught)}</tr>",
        f"<tr><th>detected spasms</th>{_td('events', mm.events)}</tr>",
        f"<tr><th>... marked by the patient</th>{_td('events_marked', mm.events_marked)}</tr>",
        "</table><h2>Notes</h2><table><tr><th>time</th><th>kind</th><th>note</th></tr>",
    ]
    for n in data.notes:
        parts.append(
            f"<tr><td>{e(_fmt_ms(n.utc_ms, tz))}</td><td>{e(n.kind)}</td><td>{e(n.text)}</td></tr>"
        )
    parts.append("</table>")
    if ba:
        parts += [
            f"<h2>Before and after medication and therapy notes ({window_h:g} h each side)</h2>",
            f"<p id='uncertainty'>{e(UNCERTAINTY)}</p><table><tr><th>note</th><th>window</th>"
            "<th>spasms</th><th>hours</th><th>per hour</th><th>95 % interval</th>"
            "<th>mean severity</th></tr>",
        ]
        for n, before, after in ba:
            for label, w in (("before", before), ("after", after)):
                lo, hi = w.rate_interval()
                k = f"note{n.id}_{label}"
                sev = "-" if w.mean_severity is None else f"{w.mean_severity:.2f}"
                parts.append(
                    f"<tr><td>{e(n.kind)}: {e(n.text)} ({e(_fmt_ms(n.utc_ms, tz))})</td>"
                    f"<td>{label}</td>{_td(k + '_count', w.count)}{_td(k + '_hours', w.hours)}"
                    f"{_td(k + '_rate', w.rate)}<td data-key='{k}_interval'>{lo:.2f} - {hi:.2f}"
                    f"</td>{_td(k + '_severity', sev)}</tr>"
                )
        parts.append("</table>")
    parts.append(f"<p><em>{e(DISCLAIMER)}</em></p></body></html>")
    out.write_text("\n".join(parts), encoding="utf-8")
    return plots


def report_main(args: argparse.Namespace, cfg: Config | None = None) -> int:
    """Run `report`; 0 written, 1 data not readable, 2 bad input or config."""
    try:
        if cfg is None:
            cfg = load(getattr(args, "config", None), overrides=parse_set(getattr(args, "set", [])))
        band = check_band_id(args.band, "--band")
        since = parse_when(args.since, "--since")
        until = parse_when(args.until, "--until")
        if until <= since:
            raise NoteError("--until: must be after --since")
        if until - since > MAX_DAYS * 86_400_000:
            raise NoteError(f"--since/--until: more than {MAX_DAYS} days")
        alerts = getattr(cfg, "alerts", None)
        tzname = args.timezone or getattr(alerts, "timezone", "UTC")
        try:
            tz = ZoneInfo(tzname)
        except (ZoneInfoNotFoundError, ValueError):
            raise NoteError(f"--timezone: {tzname!r} is not an IANA zone") from None
        sleep = args.sleep_hours or getattr(alerts, "sleep_hours", "22:00-07:00")
        try:
            parse_sleep_hours(sleep)
        except ValueError as err:
            raise NoteError(f"--sleep-hours: {err}") from None
        for opt in ("match_before_s", "match_after_s", "window_h"):
            v = getattr(args, opt)
            if not (0 <= v <= 7 * 24 * 3600):
                raise NoteError(f"--{opt.replace('_', '-')}: {v} is out of range")
        out = Path(args.out)
        if out.suffix.lower() not in (".html", ".htm"):
            raise NoteError(f"--out: {args.out!r} should end in .html")
    except (NoteError, ConfigError) as err:
        print(f"spasm-bridge report: {err}", file=sys.stderr)
        return 2
    try:
        if args.source == "influx":
            data = from_influx(cfg.influx, band, since, until)
        else:
            data = from_spool(cfg.spool.path, band, since, until)
        plots = render(data, out, tz, sleep, args.match_before_s, args.match_after_s, args.window_h)
    except ReportError as err:
        print(f"spasm-bridge report: {err}", file=sys.stderr)
        return 1
    except OSError as err:
        print(f"spasm-bridge report: cannot write {err.filename}: {err.strerror}", file=sys.stderr)
        return 1
    print(f"wrote {out} with {len(plots)} plots ({len(data.events)} spasms)")
    return 0
