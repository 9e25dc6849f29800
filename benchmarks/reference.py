"""The reference row of the request table: node-oidc-provider measured by
``benchmarks/oidc_provider/run`` on the same machine, with the same wrk settings (one thread, the
same connections), between the rounds of django-ciba's scenarios.

Each round of the request block ends with one ``run --json`` (a fresh node-oidc-provider, its own
warm-up per scenario, ``duration / rounds`` seconds measured per scenario) while the django stack is
idle, so that the reference shares the machine's drift like the django scenarios do. The rounds are
pooled like django-ciba's (:func:`load.combine`): rates from the summed counts, percentiles from the
mixture of the rounds' p50/p90/p95/p99/max (wrk's summary is all the reference script keeps).

Nothing here may fail the benchmark: when node, npm or the script is not usable the reference is
skipped with one line that says why.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from .load import Result, combine


HERE = Path(__file__).resolve().parent
SCRIPT = HERE / "oidc_provider" / "run"
SCENARIOS = ("client_credentials", "pending_poll", "bc_authorize")


def _result(name: str, connections: int, raw: dict[str, Any]) -> Result:
    lat = raw.get("latency_ms") or {}
    unexpected = sum(int(v or 0) for v in (raw.get("unexpected_answers") or {}).values())
    socket_errors = sum(int(v or 0) for v in (raw.get("socket_errors") or {}).values())
    requests = int(raw.get("requests") or 0)
    seconds = float(raw.get("seconds") or 0)
    points = [(50.0, "p50"), (90.0, "p90"), (95.0, "p95"), (99.0, "p99"), (100.0, "max")]
    return Result(
        scenario=name,
        connections=connections,
        duration=seconds,
        requests=requests,
        rps=float(raw.get("rps") or 0),
        p50=float(lat.get("p50") or 0),
        p90=float(lat.get("p90") or 0),
        p95=float(lat.get("p95") or 0),
        p99=float(lat.get("p99") or 0),
        max=float(lat.get("max") or 0),
        expected=int(raw.get("expected_answers") or 0),
        unexpected=unexpected,
        exhausted=0,
        socket_errors=socket_errors,
        statuses=dict(raw.get("unexpected_answers") or {}),
        samples=[],
        quantiles=[(p, float(lat.get(key) or 0)) for p, key in points],
        rounds_rps=[float(raw.get("rps") or 0)],
    )


def _reason(output: str) -> str:
    """The telling line of a failed run: an exception (``FetchError: ...``), else npm's error code,
    else the last line naming an error (npm ends with proxy advice and the path of its log), else
    the last line."""
    lines = [line.strip() for line in output.strip().splitlines() if line.strip()]
    for found in (
        [line for line in lines if re.search(r"[A-Za-z]Error: ", line)],
        [line for line in lines if "npm error code" in line],
        [line for line in lines if "error" in line.lower() and "complete log" not in line][-1:],
    ):
        if found:
            return found[0][:200]
    return lines[-1][:200] if lines else "no output"


class Reference:
    """Runs the reference once per round and pools the rounds; ``skipped`` says why it did not."""

    def __init__(self, connections: int, log: Any, script: Path = SCRIPT) -> None:
        self.connections = connections
        self.log = log
        self.script = script
        self.skipped = self._unusable()
        self.runs: list[dict[str, Any]] = []
        self.failed_rounds = 0
        self.duration = 0
        self.warmup = 0
        if self.skipped:
            self.log(f"reference skipped: {self.skipped}")

    def _unusable(self) -> str:
        if not self.script.exists():
            return f"{self.script} is missing"
        if not shutil.which("node"):
            return "node is not installed (benchmarks/oidc_provider needs Node.js 20 or newer)"
        installed = self.script.parent / "node_modules" / "oidc-provider" / "package.json"
        if not installed.exists() and not shutil.which("npm"):
            return "npm is not installed and benchmarks/oidc_provider/node_modules is missing"
        return ""

    def round(self, duration: float, warmup: float) -> None:
        """One ``run --json``: every scenario, ``duration`` seconds each after its warm-up."""
        if self.skipped:
            return
        self.duration = max(1, round(duration))
        self.warmup = max(0, round(warmup))
        with tempfile.TemporaryDirectory(prefix="ciba-bench-reference-") as tmp:
            out = Path(tmp) / "reference.json"
            args = [
                str(self.script),
                *("--duration", str(self.duration), "--warmup", str(self.warmup)),
                *("--connections", str(self.connections), "--threads", "1", "--json", str(out)),
            ]
            # Start-up, seeding and a first npm ci take well under this; the scenarios run 3 times.
            limit = 3 * (self.duration + self.warmup) + 300
            try:
                completed = subprocess.run(args, capture_output=True, text=True, timeout=limit)
            except (OSError, subprocess.TimeoutExpired) as error:
                return self._fail(f"{self.script.name} did not finish: {error}")
            if not out.exists():
                reason = _reason(completed.stderr or completed.stdout)
                return self._fail(f"benchmarks/oidc_provider/run exited {completed.returncode}: {reason}")
            try:
                data = json.loads(out.read_text())
            except ValueError as error:
                return self._fail(f"unreadable JSON from benchmarks/oidc_provider/run: {error}")
        # Exit status 1 with a JSON file: some answers were unexpected; they are counted and flagged.
        self.runs.append(data)
        figures = ", ".join(
            f"{name} {(data['scenarios'].get(name) or {}).get('rps', 0):.0f} rps" for name in SCENARIOS
        )
        self.log(f"reference (node-oidc-provider {data.get('version')}): {figures}")

    def _fail(self, reason: str) -> None:
        self.failed_rounds += 1
        if not self.runs:
            self.skipped = reason
            self.log(f"reference skipped: {reason}")
        else:
            self.log(f"reference round failed (kept the {len(self.runs)} earlier round(s)): {reason}")

    def rows(self) -> dict[str, dict[str, Any]]:
        """Pooled rows per reference scenario, shaped like django-ciba's request rows."""
        rows = {}
        for name in SCENARIOS:
            raws = [run["scenarios"][name] for run in self.runs if (run.get("scenarios") or {}).get(name)]
            raws = [raw for raw in raws if "skipped" not in raw]
            if not raws:
                continue
            pooled = combine([_result(name, self.connections, raw) for raw in raws])
            row = {**pooled.as_dict(), "label": "  node-oidc-provider (reference)"}
            others = [float(raw.get("others_cpu_utilisation") or 0) for raw in raws]
            row["other_cores"] = round(sum(others) / len(others), 2)
            cpu = [float(raw.get("server_cpu_ms_per_request") or 0) for raw in raws]
            row["server_cpu_ms_per_request"] = round(sum(cpu) / len(cpu), 3)
            rows[name] = row
        return rows

    def summary(self, requests: list[dict[str, Any]]) -> dict[str, Any]:
        """The JSON section: settings, pooled figures, the raw runs and django-ciba / reference."""
        if self.skipped:
            return {"skipped": self.skipped}
        first = self.runs[0]
        rows = self.rows()
        ratios = {}
        for row in requests:
            ref = rows.get(row.get("reference_scenario") or "")
            if not ref:
                continue
            ratio = {
                "django_label": row["label"],
                "rps": round(row["rps"] / ref["rps"], 3) if ref["rps"] else None,
                "p95": round(row["p95"] / ref["p95"], 3) if ref["p95"] else None,
            }
            ratios[row["reference_scenario"]] = ratio
            row["x_reference"] = ratio["rps"]
        return {
            "server": first.get("server"),
            "version": first.get("version"),
            "node": first.get("node"),
            "processes": first.get("processes"),
            "store": first.get("store"),
            "schedule": "interleaved: one benchmarks/oidc_provider/run after each round of the request block",
            "rounds": len(self.runs),
            "failed_rounds": self.failed_rounds,
            "connections": self.connections,
            "wrk_threads": 1,
            "duration_per_round_s": self.duration,
            "warmup_s": self.warmup,
            "scenarios": rows,
            "ratios": ratios,
            "ratios_note": "django-ciba / reference: rps (x reference) and p95 latency",
            "runs": self.runs,
        }
