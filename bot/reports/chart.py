"""The PNG chart posted with a report summary: messages per day and the DMARC pass rate.

Messages are bars; the pass rate is a line on the right axis.

matplotlib's object API with the Agg canvas: no pyplot (its global state is not thread-safe, and
Slack workers run in threads) and no display needed.
"""

from __future__ import annotations

import io
from datetime import date, timedelta

from bot.reports.summary import ReportSummary

WIDTH_INCHES, HEIGHT_INCHES, DPI = 8.0, 3.6, 100


def render_chart(summary: ReportSummary) -> bytes:
    """A PNG of daily volume and pass rate over the summary's window (days without reports: 0)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # heavy: only when charting
    from matplotlib.figure import Figure
    from matplotlib.ticker import PercentFormatter

    by_day = {d.day: d for d in summary.daily}
    first = date.fromisoformat(summary.first)
    days = [first + timedelta(days=i) for i in range((date.fromisoformat(summary.last) - first).days + 1)]
    # Floats: matplotlib converts integers to C longs, and a day's total may exceed 64 bits.
    volumes = [float(by_day[d.isoformat()].messages) if d.isoformat() in by_day else 0.0 for d in days]
    rates = [
        by_day[d.isoformat()].passed / by_day[d.isoformat()].messages * 100
        if d.isoformat() in by_day and by_day[d.isoformat()].messages
        else float("nan")
        for d in days
    ]

    figure = Figure(figsize=(WIDTH_INCHES, HEIGHT_INCHES), dpi=DPI)
    FigureCanvasAgg(figure)
    volume_axis = figure.add_subplot()
    # matplotlib's date converter takes dates; its stubs only admit numbers and arrays.
    volume_axis.bar(days, volumes, color="#9db4d0", label="messages")  # type: ignore[arg-type]
    volume_axis.set_ylabel("messages per day")
    rate_axis = volume_axis.twinx()
    rate_axis.plot(
        days,  # type: ignore[arg-type]
        rates,
        color="#1f3b5c",
        marker="o",
        markersize=3,
        label="DMARC pass",
    )
    rate_axis.set_ylim(0, 105)
    rate_axis.yaxis.set_major_formatter(PercentFormatter())
    rate_axis.set_ylabel("passed DMARC")
    # The domain came from the user, already validated as a domain name: safe as a title.
    volume_axis.set_title(f"{summary.domain}: DMARC reports, {summary.first} to {summary.last}")
    figure.autofmt_xdate()
    figure.tight_layout()
    out = io.BytesIO()
    figure.savefig(out, format="png")
    return out.getvalue()
