"""Memory of the soak's server processes: RSS (``/proc/PID/status`` VmRSS) and, when readable, PSS
(``/proc/PID/smaps_rollup``), sampled every few seconds per process group (gunicorn master and
workers, the Celery main process, its prefork pool and its embedded beat).

A group's figures are the sums over its processes. After the warm-up, a least-squares line through
the group's RSS samples gives the slope (MB per 10 minutes) and the fitted growth over the measured
window; a group *grows* when that fitted growth exceeds both ``threshold_mb`` and ``threshold_pct``
of the group's value after the warm-up.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


MB = 1024.0  # /proc reports kB
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def read_memory(pid: int) -> tuple[float, float | None] | None:
    """``(rss_mb, pss_mb or None)`` of ``pid``; ``None`` when the process is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    rss = None
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1]) / MB
            break
    if rss is None:  # a zombie has no VmRSS
        return None
    pss = None
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                pss = int(line.split()[1]) / MB
                break
    except (OSError, ValueError):
        pass
    return rss, pss


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` so far (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of ``(x, y)`` points (y per x unit); 0 with fewer than two distinct x."""
    n = len(points)
    if n < 2:
        return 0.0
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    sxx = sum((x - mean_x) ** 2 for x, _ in points)
    if sxx == 0:
        return 0.0
    return sum((x - mean_x) * (y - mean_y) for x, y in points) / sxx


def summarize_group(
    samples: list[tuple[float, float, float | None, float]],
    warmup: float,
    *,
    threshold_mb: float,
    threshold_pct: float,
) -> dict[str, Any]:
    """One group's row from its samples ``(t_seconds, rss_mb, pss_mb, cpu_seconds)``, ``t`` from
    traffic start.

    ``after_warmup`` is the first sample at or after ``warmup`` (the last one when none is).
    """
    if not samples:
        return {"samples": 0}
    measured = [s for s in samples if s[0] >= warmup] or samples[-1:]
    first, last = measured[0], measured[-1]
    per_second = slope([(t, rss) for t, rss, _, _ in measured])
    window = last[0] - first[0]
    fitted = per_second * window
    pss = [(t, p) for t, _, p, _ in measured if p is not None]
    cores = (last[3] - first[3]) / window if window > 0 else None
    growth_limit = max(threshold_mb, first[1] * threshold_pct / 100.0)
    return {
        "samples": len(measured),
        "window_s": round(window, 1),
        "after_warmup_mb": round(first[1], 2),
        "final_mb": round(last[1], 2),
        "max_mb": round(max(s[1] for s in measured), 2),
        "min_mb": round(min(s[1] for s in measured), 2),
        "change_mb": round(last[1] - first[1], 2),
        "slope_mb_per_10min": round(per_second * 600.0, 2),
        "fitted_growth_mb": round(fitted, 2),
        "growth_limit_mb": round(growth_limit, 2),
        "grows": fitted > threshold_mb and fitted > first[1] * threshold_pct / 100.0,
        "pss_after_warmup_mb": round(pss[0][1], 2) if pss else None,
        "pss_final_mb": round(pss[-1][1], 2) if pss else None,
        "pss_slope_mb_per_10min": round(slope(pss) * 600.0, 2) if len(pss) > 1 else None,
        "cpu_cores": round(cores, 3) if cores is not None else None,
    }


class MemorySampler:
    """Samples ``groups()`` (``{name: [pid, ...]}``) every ``interval`` seconds in a thread."""

    def __init__(self, groups: Callable[[], dict[str, list[int]]], interval: float) -> None:
        self.groups = groups
        self.interval = interval
        self.started = time.monotonic()
        self.samples: dict[str, list[tuple[float, float, float | None, float]]] = {}
        self.pids: dict[str, list[list[int]]] = {}  # each distinct pid set seen, in order
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="soak-memory", daemon=True)

    def start(self) -> None:
        self.started = time.monotonic()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)
        self.sample()  # the final value is taken at the end of the traffic

    def _run(self) -> None:
        while True:
            self.sample()
            if self._stop.wait(self.interval):
                return

    def sample(self) -> None:
        t = time.monotonic() - self.started
        for name, pids in self.groups().items():
            total_rss, total_pss, cpu, alive = 0.0, 0.0, 0.0, []
            pss_ok = True
            for pid in pids:
                value = read_memory(pid)
                if value is None:
                    continue
                alive.append(pid)
                cpu += cpu_seconds(pid)
                total_rss += value[0]
                if value[1] is None:
                    pss_ok = False
                else:
                    total_pss += value[1]
            if not alive:
                continue
            self.samples.setdefault(name, []).append((t, total_rss, total_pss if pss_ok else None, cpu))
            seen = self.pids.setdefault(name, [])
            if not seen or seen[-1] != sorted(alive):
                seen.append(sorted(alive))

    def restarts(self) -> dict[str, int]:
        """Groups whose set of processes changed during the run (a process died or was replaced)."""
        return {name: len(sets) - 1 for name, sets in self.pids.items() if len(sets) > 1}

    def summary(
        self, warmup: float, *, threshold_mb: float, threshold_pct: float, informative: set[str]
    ) -> list[dict[str, Any]]:
        rows = []
        for name, samples in self.samples.items():
            row = summarize_group(samples, warmup, threshold_mb=threshold_mb, threshold_pct=threshold_pct)
            row["group"] = name
            row["processes"] = len(self.pids.get(name, [[]])[-1])
            row["judged"] = name not in informative
            row["series"] = [[round(t, 1), round(rss, 2)] for t, rss, _, _ in samples]
            rows.append(row)
        return rows


def render(rows: list[dict[str, Any]], *, judged: bool) -> str:
    """The memory table: RSS sums per group in MB (PSS in the last columns when readable)."""
    header = (
        f"{'process group':<26}{'procs':>6}{'after warm-up':>15}{'final':>9}{'max':>9}"
        f"{'slope MB/10min':>16}{'fit growth':>12}{'PSS warm':>10}{'PSS final':>11}{'cores':>7}  verdict"
    )
    lines = [header, "-" * len(header)]
    for row in rows:
        if not row.get("samples"):
            continue
        if not row["judged"]:
            verdict = "(not judged)"
        elif not judged:
            verdict = "(smoke: not judged)"
        else:
            verdict = "GROWS" if row["grows"] else "flat"

        def opt(value: float | None) -> str:
            return "-" if value is None else f"{value:.1f}"

        def opt2(value: float | None) -> str:
            return "-" if value is None else f"{value:.2f}"

        lines.append(
            f"{row['group']:<26}{row['processes']:>6}{row['after_warmup_mb']:>15.1f}{row['final_mb']:>9.1f}"
            f"{row['max_mb']:>9.1f}{row['slope_mb_per_10min']:>+16.2f}{row['fitted_growth_mb']:>+12.2f}"
            f"{opt(row['pss_after_warmup_mb']):>10}{opt(row['pss_final_mb']):>11}"
            f"{opt2(row['cpu_cores']):>7}  {verdict}"
        )
    return "\n".join(lines)
