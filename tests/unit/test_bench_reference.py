"""The benchmark's reference rows (benchmarks/reference.py, report.py): pooled from the JSON of
benchmarks/oidc_provider/run, skipped with one line when it cannot run, off in the smoke form."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from benchmarks import reference as reference_module
from benchmarks.harness import parse_args
from benchmarks.reference import Reference
from benchmarks.report import render


def _scenario(rps: float, p95: float) -> dict:
    return {
        "rps": rps,
        "requests": int(rps * 2),
        "seconds": 2,
        "latency_ms": {"p50": p95 / 2, "p90": p95 * 0.9, "p95": p95, "p99": p95 * 1.5, "max": p95 * 3},
        "server_cpu_ms_per_request": 0.25,
        "others_cpu_utilisation": 0.01,
        "expected_answers": int(rps * 2),
        "unexpected_answers": {},
        "socket_errors": {"connect": 0, "read": 0, "write": 0, "timeout": 0},
    }


REPORT = {
    "server": "node-oidc-provider",
    "version": "9.13.3",
    "node": "v20.20.2",
    "processes": 1,
    "store": "memory",
    "scenarios": {
        "client_credentials": _scenario(4000, 8.0),
        "bc_authorize": _scenario(4200, 7.0),
        "pending_poll": _scenario(3900, 9.0),
    },
}


def _script(tmp_path: Path, body: str) -> Path:
    script = tmp_path / "run"
    script.write_text("#!/usr/bin/env bash\n" + body)
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return script


def _writes_report(tmp_path: Path) -> Path:
    (tmp_path / "report.json").write_text(json.dumps(REPORT))
    # Copies the canned report to the path after --json, like the real script.
    return _script(
        tmp_path,
        f'while [[ $# -gt 0 ]]; do [[ "$1" == --json ]] && cp {tmp_path}/report.json "$2"; shift; done\n',
    )


@pytest.fixture
def node(monkeypatch):
    monkeypatch.setattr(reference_module.shutil, "which", lambda name: f"/usr/bin/{name}")


def _requests() -> list[dict]:
    def row(label: str, rps: float, p95: float, key: str | None) -> dict:
        data = {
            "label": label,
            "connections": 16,
            "rps": rps,
            "p50": 1.0,
            "p95": p95,
            "p99": p95,
            "errors": 0,
        }
        if key:
            data["reference_scenario"] = key
        return data

    return [
        row("client_credentials (baseline)", 1000, 20.0, "client_credentials"),
        row("pending poll (10,000 rows)", 780, 30.0, "pending_poll"),
        row("approved poll (token issuance)", 300, 60.0, None),
        row("bc-authorize", 420, 50.0, "bc_authorize"),
    ]


def _data(ref: dict) -> dict:
    requests = _requests()
    meta = {"mode": "full", "started": "now", "elapsed_s": 1, "server": "s", "load": "l"}
    meta.update(connections=16, duration=4, warmup=1)
    return {"meta": meta, "requests": requests, "baseline": requests[0], "reference": ref}


def test_rounds_are_pooled_and_compared(tmp_path, node):
    logged = []
    ref = Reference(16, logged.append, script=_writes_report(tmp_path))
    ref.round(2, warmup=1)
    ref.round(2, warmup=1)
    assert not ref.skipped
    data = _data({})
    data["reference"] = ref.summary(data["requests"])
    summary = data["reference"]
    assert summary["rounds"] == 2
    assert summary["scenarios"]["pending_poll"]["rps"] == 3900
    assert summary["scenarios"]["pending_poll"]["rounds_rps"] == [3900, 3900]
    assert summary["ratios"]["pending_poll"]["rps"] == pytest.approx(780 / 3900, abs=1e-3)
    assert summary["ratios"]["bc_authorize"]["p95"] == pytest.approx(50 / 7, abs=1e-3)
    assert "approved poll" not in json.dumps(summary["ratios"])
    table = render(data)
    assert "× reference" in table
    assert table.count("node-oidc-provider (reference)") == 3
    assert f"{780 / 3900:.2f}x" in table


def test_missing_node_skips_with_one_line(tmp_path, monkeypatch):
    monkeypatch.setattr(reference_module.shutil, "which", lambda name: None)
    logged = []
    ref = Reference(16, logged.append, script=_writes_report(tmp_path))
    ref.round(2, warmup=1)
    assert ref.skipped.startswith("node is not installed")
    assert logged == [f"reference skipped: {ref.skipped}"]
    table = render(_data(ref.summary(_requests())))
    assert f"reference skipped: {ref.skipped}" in table
    assert "× reference" not in table


def test_failing_script_skips(tmp_path, node):
    logged = []
    ref = Reference(
        16, logged.append, script=_script(tmp_path, "echo 'npm ci failed: ENOTFOUND' >&2; exit 1\n")
    )
    ref.round(2, warmup=1)
    assert ref.skipped == "benchmarks/oidc_provider/run exited 1: npm ci failed: ENOTFOUND"
    assert ref.summary(_requests()) == {"skipped": ref.skipped}


def test_reference_defaults():
    assert parse_args([]).reference is True
    assert parse_args(["--no-reference"]).reference is False
    assert parse_args(["--smoke"]).reference is False
    assert parse_args(["--smoke", "--reference"]).reference is True


def test_no_reference_no_column():
    data = _data({})
    del data["reference"]
    table = render(data)
    assert "reference" not in table


def test_npm_failure_names_the_error(tmp_path, node):
    output = (
        "installing node-oidc-provider (npm ci)\\n"
        "npm error code ECONNREFUSED\\n"
        "npm error FetchError: request to http://127.0.0.1:9/oidc-provider failed\\n"
        "npm error A complete log of this run can be found in: /tmp/x.log\\n"
    )
    ref = Reference(16, lambda msg: None, script=_script(tmp_path, f"printf '{output}' >&2; exit 1\n"))
    ref.round(2, warmup=1)
    assert ref.skipped.endswith(
        "exited 1: npm error FetchError: request to http://127.0.0.1:9/oidc-provider failed"
    )
