"""The load generator: ``wrk`` (fixed connections, fixed duration, loopback only) driven by
``benchmarks/wrk/form.lua``, which checks every answer and writes a JSON summary."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


HERE = Path(__file__).resolve().parent
SCRIPT = HERE / "wrk" / "form.lua"


@dataclass
class Scenario:
    """One kind of request: where it goes, what it sends, and which answer is the right one."""

    name: str
    path: str
    body: str  # "{id}" is replaced by a value of ``ids`` (rotating, or once each)
    auth: str
    expect_status: int
    expect_body: str = ""
    ids: list[str] = field(default_factory=list)
    once: bool = False  # each value at most once (approved polls)
    cursor: int = 0  # next value to use; advanced after every run (warm-up included)


@dataclass
class Result:
    scenario: str
    connections: int
    duration: float
    requests: int
    rps: float
    p50: float  # milliseconds
    p90: float
    p95: float
    p99: float
    max: float
    expected: int
    unexpected: int
    exhausted: int
    socket_errors: int
    statuses: dict[str, int]
    samples: list[str]
    quantiles: list[tuple[float, float]] = field(default_factory=list)  # (percent, ms)
    rounds_rps: list[float] = field(default_factory=list)
    placement: list[list[int]] = field(default_factory=list)  # connections per gunicorn worker, per round
    server_cpu_s: float = 0.0  # CPU seconds the gunicorn processes used during the run(s)
    # CPU seconds of the Celery worker (main process, pool, beat) during the run(s) and, after a
    # bc-authorize run, until its notifications were delivered; None without a worker.
    worker_cpu_s: float | None = None

    @property
    def errors(self) -> int:
        return self.unexpected + self.socket_errors

    @property
    def flagged(self) -> bool:
        return self.errors > 0 or self.exhausted > 0 or self.requests == 0

    def as_dict(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        data.pop("quantiles")
        data["errors"] = self.errors
        data["flagged"] = self.flagged
        data["server_cpu_s"] = round(self.server_cpu_s, 3)
        # CPU of the server per answer, and the cores it kept busy: next to the rate, they tell a
        # CPU-bound path (cores near the workers' share of the machine) from one that waits.
        data["server_cpu_ms_per_request"] = (
            round(1000 * self.server_cpu_s / self.requests, 3)
            if self.requests and self.server_cpu_s
            else None
        )
        data["server_cores"] = round(self.server_cpu_s / self.duration, 2) if self.duration else None
        if self.worker_cpu_s is not None:
            data["worker_cpu_s"] = round(self.worker_cpu_s, 3)
            data["worker_cpu_ms_per_request"] = (
                round(1000 * self.worker_cpu_s / self.requests, 3) if self.requests else None
            )
        return data


def wrk_binary() -> str:
    path = shutil.which("wrk")
    if not path:
        raise RuntimeError("wrk is not installed (Debian: apt-get install wrk; benchmarks/run installs it)")
    return path


def run(
    scenario: Scenario,
    base_url: str,
    *,
    connections: int,
    duration: float,
    threads: int = 1,
    timeout: float = 10.0,
) -> Result:
    """One bounded wrk run of ``scenario``; advances ``scenario.cursor`` past the values it used."""
    threads = max(1, min(threads, connections))
    with tempfile.TemporaryDirectory(prefix="ciba-bench-wrk-") as tmp:
        ids_file = Path(tmp) / "ids.txt"
        out_file = Path(tmp) / "result.json"
        ids_file.write_text("\n".join(scenario.ids) + "\n")
        env = {
            **os.environ,
            "BENCH_PATH": scenario.path,
            "BENCH_AUTH": scenario.auth,
            "BENCH_BODY": scenario.body,
            "BENCH_IDS": str(ids_file),
            "BENCH_OFFSET": str(scenario.cursor % max(1, len(scenario.ids))),
            "BENCH_ONCE": "1" if scenario.once else "0",
            "BENCH_THREADS": str(threads),
            "BENCH_EXPECT_STATUS": str(scenario.expect_status),
            "BENCH_EXPECT_BODY": scenario.expect_body,
            "BENCH_OUT": str(out_file),
        }
        if scenario.once:
            env["BENCH_OFFSET"] = str(scenario.cursor)
        seconds = max(1, round(duration))
        args = [
            wrk_binary(),
            *("-t", str(threads), "-c", str(connections), "-d", f"{seconds}s"),
            *("--timeout", f"{timeout:g}s", "-s", str(SCRIPT)),
            base_url,
        ]
        completed = subprocess.run(
            args, env=env, capture_output=True, text=True, timeout=seconds + timeout + 60
        )
        if completed.returncode != 0 or not out_file.exists():
            raise RuntimeError(
                f"wrk failed ({completed.returncode}) for {scenario.name}:\n"
                f"{completed.stdout}\n{completed.stderr}"
            )
        data = json.loads(out_file.read_text())
    counts = data.get("counts") or {}
    scenario.cursor += int(counts.get("sent", 0))
    lat = data["latency_us"]
    pct = lat.get("percentiles") or {}
    socket_errors = sum(int(v or 0) for v in (data.get("socket_errors") or {}).values())
    requests = int(data["requests"])
    elapsed = max(1e-9, data["duration_us"] / 1e6)
    statuses = data.get("statuses") or {}
    return Result(
        scenario=scenario.name,
        connections=connections,
        duration=round(elapsed, 3),
        requests=requests,
        rps=round(requests / elapsed, 1),
        p50=_ms(pct.get("50")),
        p90=_ms(pct.get("90")),
        p95=_ms(pct.get("95")),
        p99=_ms(pct.get("99")),
        max=_ms(lat.get("max")),
        expected=int(counts.get("expected", 0)),
        unexpected=int(counts.get("unexpected", 0)),
        exhausted=int(counts.get("exhausted", 0)),
        socket_errors=socket_errors,
        statuses=statuses if isinstance(statuses, dict) else {},
        samples=list(data.get("samples") or []),
        quantiles=[(float(p), _ms(v)) for p, v in lat.get("quantiles") or []],
        rounds_rps=[round(requests / elapsed, 1)],
    )


def combine(results: list[Result]) -> Result:
    """Pool several runs of one scenario: rates from the summed counts and times, percentiles
    from the mixture of the runs' quantile functions (each run weighted by its requests).

    Each run opens new connections, which gunicorn's workers share out anew (unevenly: one
    worker may take most of them), so several shorter runs sample that placement too."""
    if len(results) == 1:
        return results[0]
    first = results[0]
    requests = sum(r.requests for r in results)
    duration = sum(r.duration for r in results)
    weighted = []  # (latency, requests it stands for): the mass between two quantile points
    for r in results:
        previous = 0.0
        for percent, value in r.quantiles:
            weighted.append((value, r.requests * (percent - previous) / 100.0))
            previous = percent
    weighted.sort()
    total = sum(weight for _, weight in weighted) or 1.0

    def pct(p: float) -> float:
        running = 0.0
        for value, weight in weighted:
            running += weight
            if running >= total * p / 100.0 - 1e-9:
                return value
        return weighted[-1][0] if weighted else 0.0

    statuses: dict[str, int] = {}
    for r in results:
        for key, count in r.statuses.items():
            statuses[key] = statuses.get(key, 0) + count
    return Result(
        scenario=first.scenario,
        connections=first.connections,
        duration=round(duration, 3),
        requests=requests,
        rps=round(requests / max(1e-9, duration), 1),
        p50=pct(50),
        p90=pct(90),
        p95=pct(95),
        p99=pct(99),
        max=max(r.max for r in results),
        expected=sum(r.expected for r in results),
        unexpected=sum(r.unexpected for r in results),
        exhausted=sum(r.exhausted for r in results),
        socket_errors=sum(r.socket_errors for r in results),
        statuses=statuses,
        samples=[s for r in results for s in r.samples][:3],
        quantiles=[],
        rounds_rps=[rps for r in results for rps in r.rounds_rps],
        placement=[p for r in results for p in r.placement],
        server_cpu_s=sum(r.server_cpu_s for r in results),
        worker_cpu_s=None
        if any(r.worker_cpu_s is None for r in results)
        else sum(r.worker_cpu_s or 0.0 for r in results),
    )


def _ms(microseconds: Any) -> float:
    return round(float(microseconds or 0) / 1000.0, 2)
