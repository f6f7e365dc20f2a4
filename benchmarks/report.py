"""The printed table (Markdown, so it pastes into the README) and the PASS/FAIL target summary."""
import math
from dataclasses import dataclass, field
from typing import List, Optional

from .common import MiB


@dataclass
class Row:
    section: str
    model: str
    setting: str
    times: List[float] = field(default_factory=list)  # seconds of each timed run
    median: Optional[float] = None  # seconds
    ratio: Optional[float] = None  # median / baseline median (time ratio: < 1 is faster)
    baseline: str = ""
    throughput: Optional[float] = None  # images per second
    peak: Optional[int] = None  # bytes
    note: str = ""

    @property
    def spread(self) -> Optional[float]:
        """(max - min) / median of the timed runs."""
        if len(self.times) < 2 or not self.median:
            return None
        return (max(self.times) - min(self.times)) / self.median


def fmt_time(seconds: Optional[float]) -> str:
    if seconds is None or (isinstance(seconds, float) and math.isnan(seconds)):
        return "-"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f} us"
    if seconds < 1.0:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds:.3f} s"


def fmt_bytes(nbytes: Optional[int]) -> str:
    if nbytes is None:
        return "-"
    if nbytes >= 1024 * MiB:
        return f"{nbytes / MiB / 1024:.2f} GiB"
    if nbytes >= MiB:
        return f"{nbytes / MiB:.0f} MiB"
    return f"{nbytes / 1024:.0f} KiB"


def fmt_ratio(ratio: Optional[float]) -> str:
    return "-" if ratio is None else f"{ratio:.3f}"


COLUMNS = (
    "section", "model", "setting", "median", "spread", "time / baseline", "baseline",
    "img/s", "peak mem", "note",
)  # fmt: skip


def render_table(rows: List[Row]) -> str:
    cells = [list(COLUMNS)]
    for r in rows:
        spread = r.spread
        cells.append(
            [
                r.section,
                r.model,
                r.setting,
                fmt_time(r.median),
                "-" if spread is None else f"{100 * spread:.0f}%",
                fmt_ratio(r.ratio),
                r.baseline or "-",
                "-" if r.throughput is None else f"{r.throughput:.2f}",
                fmt_bytes(r.peak),
                r.note,
            ]
        )
    widths = [max(len(row[i]) for row in cells) for i in range(len(COLUMNS))]
    lines = []
    for k, row in enumerate(cells):
        lines.append("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths)) + " |")
        if k == 0:
            lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


@dataclass
class Target:
    name: str
    status: str  # PASS, FAIL, N/A
    measured: str


def render_targets(targets: List[Target]) -> str:
    width = max(len(t.name) for t in targets) if targets else 0
    return "\n".join(f"{t.status:<4}  {t.name.ljust(width)}  {t.measured}" for t in targets)
