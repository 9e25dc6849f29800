"""The plain-text table, the JSON file and the concurrency plot."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any


def _num(value: Any, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:,.{digits}f}"


def _ratio(value: float | None, base: float | None) -> str:
    if not value or not base:
        return "-"
    return f"{value / base:.2f}x"


def _errors(row: dict[str, Any]) -> str:
    errors = int(row.get("errors", 0))
    return f"{errors}!" if row.get("flagged") else str(errors)


REQUEST_HEADER = (
    f"{'scenario':<34}{'conns':>6}{'rps':>9}{'(rounds)':>12}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}"
    f"{'errors':>8}{'rps/base':>10}{'p95/base':>10}{'others':>8}"
)


def _spread(row: dict[str, Any]) -> str:
    rounds = row.get("rounds_rps") or []
    if len(rounds) < 2:
        return ""
    return f"({min(rounds):.0f}-{max(rounds):.0f})"


def request_line(row: dict[str, Any], base: dict[str, Any] | None) -> str:
    return (
        f"{row['label']:<34}{row['connections']:>6}{_num(row['rps']):>9}{_spread(row):>12}"
        f"{_num(row['p50'], 2):>9}"
        f"{_num(row['p95'], 2):>9}{_num(row['p99'], 2):>9}{_errors(row):>8}"
        f"{_ratio(row['rps'], base and base['rps']):>10}{_ratio(row['p95'], base and base['p95']):>10}"
        f"{_num(row.get('other_cores'), 2):>8}"
    )


X_REFERENCE = f"{'× reference':>13}"
X_FLOOR = f"{'× floor':>9}"


def _reference_lines(data: dict[str, Any]) -> list[str]:
    """What the reference rows are, or why there are none (absent: not requested)."""
    ref = data.get("reference")
    if not ref:
        return []
    if ref.get("skipped"):
        return [f"reference skipped: {ref['skipped']}"]
    failed = f", {ref['failed_rounds']} failed" if ref.get("failed_rounds") else ""
    return [
        f"reference rows: {ref['server']} {ref['version']} (Node.js {ref['node']}, "
        f"{ref['processes']} process, in-memory store), run by",
        "benchmarks/oidc_provider/run after each round with this stack idle: "
        f"{ref['rounds']} run(s){failed}, fresh server, {ref['warmup_s']} s warm-up",
        f"and {ref['duration_per_round_s']} s per scenario each, same wrk settings; "
        "'× reference' = django-ciba rps / reference rps",
        "(benchmarks/oidc_provider/README.md lists the caveats: memory, not PostgreSQL; no slow_down check)",
    ]


SECTION_TITLES = {
    "production": "production: gunicorn, PostgreSQL, Redis cache, Celery worker",
    "embedded-postgres": "embedded-postgres: in-process tasks, local-memory cache, PostgreSQL",
    "embedded-sqlite": "embedded-sqlite: in-process tasks, local-memory cache, SQLite",
}
CPU_HEADER = f"{'cpu ms/req':>11}{'cores':>7}"


WORKER_HEADER = f"{'worker ms/req':>14}"


def _cpu(row: dict[str, Any]) -> str:
    return f"{_num(row.get('server_cpu_ms_per_request'), 2):>11}{_num(row.get('server_cores'), 2):>7}"


def _worker(row: dict[str, Any]) -> str:
    return f"{_num(row.get('worker_cpu_ms_per_request'), 2):>14}"


def merge_sections(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """One document from the sections' JSON: the first section's extras (reference, sweep,
    callbacks, scale, profile) at the top level as before, every section's request rows under
    ``sections``, each with its ratios to its own client_credentials and to the reference."""
    data = dict(parts[0])
    reference = data.get("reference") or {}
    ref_rows = reference.get("scenarios") or {}
    sections = []
    log_errors: list[Any] = []
    for part in parts:
        meta = part["meta"]
        name = f"{meta['config']}:{meta['server_kind']}"
        base = part["requests"][0]
        ratios: dict[str, Any] = {}
        floors = {row["floor_of"]: row for row in part["requests"] if row.get("floor_of")}
        for row in part["requests"]:
            row["section"] = name
            row["rps_vs_baseline"] = round(row["rps"] / base["rps"], 3) if base["rps"] else None
            ref = ref_rows.get(row.get("reference_scenario") or row.get("floor_of") or "")
            if ref and ref.get("rps"):
                row["x_reference"] = round(row["rps"] / ref["rps"], 3)
            floor = floors.get(row.get("reference_scenario") or "")
            if floor and floor["rps"]:
                row["x_floor"] = round(row["rps"] / floor["rps"], 3)
            if ref and ref.get("rps") and row.get("reference_scenario"):
                ratios[row["reference_scenario"]] = {
                    "django_label": row["label"],
                    "rps": row["x_reference"],
                    "p95": round(row["p95"] / ref["p95"], 3) if ref.get("p95") else None,
                    "x_floor": row.get("x_floor"),
                }
        sections.append(
            {
                "name": name,
                "config": meta["config"],
                "server": meta["server_kind"],
                "meta": meta,
                "requests": part["requests"],
                "baseline": base,
                "reference_ratios": ratios,
                "flagged": part.get("flagged", False),
            }
        )
        log_errors += [(f"[{name}] {where}", excerpt) for where, excerpt in part.get("log_errors", [])]
    data["meta"] = {**parts[0]["meta"], "sections": [section["name"] for section in sections]}
    data["sections"] = sections
    data["log_errors"] = log_errors
    data["flagged"] = any(part.get("flagged") for part in parts)
    return data


def _sections(data: dict[str, Any]) -> list[dict[str, Any]]:
    """The request sections (a single-section document, as older JSON, is its own section)."""
    if data.get("sections"):
        return data["sections"]
    meta = data["meta"]
    name = f"{meta.get('config', 'production')}:{meta.get('server_kind', 'gthread')}"
    return [{"name": name, "meta": meta, "requests": data["requests"], "baseline": data.get("baseline")}]


def render(data: dict[str, Any]) -> str:
    lines: list[str] = []
    meta = data["meta"]
    ref_rows = (data.get("reference") or {}).get("scenarios") or {}
    sections = _sections(data)
    lines += [
        "",
        f"django-ciba benchmark ({meta['mode']}), {meta['started']}, {meta['elapsed_s']:.0f} s in all",
        f"load:   {meta['load']}",
        "ratios compare with DOT's own client_credentials grant on the same server, same client, same "
        "section of the run;",
        "each row pools interleaved rounds (rps range of the rounds in brackets); 'others': cores used",
        "meanwhile by processes outside the benchmark (another program on the machine skews that block);",
        "'cpu ms/req' and 'cores': CPU of the gunicorn processes per answer and in all (2 workers on 2 "
        "cores: near 2 = CPU-bound);",
        "'worker ms/req': CPU of the Celery worker per answer (production; bc-authorize: until its device",
        "notifications were delivered)",
        "'floor' rows: the same answer written by hand in plain Django views (benchmarks/floor.py: no DRF,",
        "DOT or policy; same server, settings and database); '× floor' = django-ciba rps / the floor's rps",
        "",
        f"Requests ({meta['connections']} connections, {meta['duration']:g} s each "
        f"after a {meta['warmup']:g} s warm-up), one section per configuration and server",
        *_reference_lines(data),
    ]
    if ref_rows and len(sections) > 1:
        lines.append(
            "the reference rows are measured during the first section; every section's '× reference' "
            "compares with them"
        )
    for index, section in enumerate(sections):
        smeta = section["meta"]
        config, server = section["name"].split(":")
        lines += [
            "",
            f"[{section['name']}] {SECTION_TITLES.get(config, config)}; server: {server}",
            f"server: {smeta['server']}",
        ]
        base = section.get("baseline")
        worker = any(row.get("worker_cpu_ms_per_request") is not None for row in section["requests"])
        lines.append(
            REQUEST_HEADER
            + CPU_HEADER
            + (WORKER_HEADER if worker else "")
            + (X_REFERENCE if ref_rows else "")
            + X_FLOOR
        )
        for row in section["requests"]:
            x_ref = _num(row["x_reference"], 2) + "x" if row.get("x_reference") else ""
            x_floor = _num(row["x_floor"], 2) + "x" if row.get("x_floor") else ""
            lines.append(
                (
                    request_line(row, base)
                    + _cpu(row)
                    + (_worker(row) if worker else "")
                    + (f"{x_ref:>13}" if ref_rows else "")
                    + f"{x_floor:>9}"
                ).rstrip()
            )
            ref_row = ref_rows.get(row.get("reference_scenario") or "") if index == 0 else None
            if ref_row:
                lines.append(request_line(ref_row, None))
        placements = [p for row in section["requests"] for p in row.get("placement", []) if sum(p)]
        if placements:
            skewed = sum(1 for p in placements if max(p) >= 0.75 * sum(p))
            shown = ", ".join("/".join(str(n) for n in p) for p in placements[:8])
            more = " ..." if len(placements) > 8 else ""
            lines.append(
                f"connections per gunicorn worker, sampled mid-round: {shown}{more}"
                f" ({skewed} of {len(placements)} rounds with one worker holding >= 3/4)"
            )
    if len(sections) > 1:
        lines += ["", "Sections side by side (rps; in brackets: x client_credentials of the same section)"]
        labels = [row["label"].split(" (")[0] for row in sections[0]["requests"]]
        names = [section["name"] for section in sections]
        lines.append(f"{'scenario':<22}" + "".join(f"{name:>30}" for name in names))
        for i, label in enumerate(labels):
            cells = []
            for section in sections:
                rows = section["requests"]
                row = rows[i] if i < len(rows) else None
                cell = f"{_num(row['rps'])} ({_ratio(row['rps'], rows[0]['rps'])})" if row else "-"
                cells.append(f"{cell:>30}")
            lines.append(f"{label:<22}" + "".join(cells))
    if data.get("sweep"):
        lines += ["", f"Concurrency sweep ({meta['sweep_duration']:g} s per point)", REQUEST_HEADER]
        bases = {r["connections"]: r for r in data["sweep"] if r["scenario"] == "client_credentials"}
        for row in data["sweep"]:
            lines.append(request_line(row, bases.get(row["connections"])))
    if data.get("callbacks"):
        cb = data["callbacks"]
        lines += [
            "",
            "Callbacks (one approval at a time; approval commit -> arrival at the loopback HTTPS receiver)",
            f"{'scenario':<34}{'n':>6}{'p50 ms':>10}{'p95 ms':>9}{'p99 ms':>9}{'max ms':>9}{'errors':>8}"
            f"{'p95 / (no-op p95 + POST p95)':>31}",
        ]
        floor = (cb.get("noop") or {}).get("p95", 0) + (cb.get("post") or {}).get("p95", 0)
        for key in ("noop", "post", "task_post", "ping", "push"):
            row = cb.get(key)
            if not row:
                continue
            ratio = _ratio(row["p95"], floor) if key in ("ping", "push", "task_post") else ""
            lines.append(
                f"{row['scenario']:<34}{row['count']:>6}{_num(row['p50'], 2):>10}{_num(row['p95'], 2):>9}"
                f"{_num(row['p99'], 2):>9}{_num(row['max'], 2):>9}{_errors(row):>8}{ratio:>31}"
            )
    scale = data.get("scale")
    if scale:
        lines += [
            "",
            "Scale (pending polls against a growing table, each next to a client_credentials control run;",
            "ratios here are against that control; then cleanup of the finished rows)",
            REQUEST_HEADER,
        ]
        for key in ("small", "large"):
            row, control = scale.get(key), scale.get(f"{key}_control")
            if row:
                lines.append(request_line(row, control))
            if control:
                lines.append(request_line(control, control))
        small, large = scale.get("small"), scale.get("large")
        if small and large:
            relative = [
                (large[k] / scale["large_control"][k]) / (small[k] / scale["small_control"][k])
                if small[k] and large[k] and scale["large_control"][k] and scale["small_control"][k]
                else float("nan")
                for k in ("rps", "p95")
            ]
            lines.append(
                f"pending poll, {small['rows']:,} -> {large['rows']:,} rows: "
                f"rps {_ratio(large['rps'], small['rps'])}, "
                f"p95 {_ratio(large['p95'], small['p95'])} raw; against the control: rps {relative[0]:.2f}x, "
                f"p95 {relative[1]:.2f}x (1.00x = flat)"
            )
        purge = scale.get("purge")
        if purge:
            batch = purge["batch_ms"]
            lines.append(
                f"purge_finished: {purge['deleted']:,} rows deleted in {purge['seconds']:.1f} s "
                f"({purge['rows_per_second']:,} rows/s), {purge['batches']:,} batches; batch p50 "
                f"{batch['p50']:.1f} ms, p99 {batch['p99']:.1f} ms, longest {batch['max']:.1f} ms; longest "
                f"delete transaction {purge['delete_transaction_ms_max']:.1f} ms; slowest batch select "
                f"{purge['select_ms_max']:.1f} ms"
                + (f"; ERROR {purge['error']}" if purge.get("error") else "")
            )
            windows = purge.get("load_windows") or []
            if windows:
                worst = max(windows, key=lambda w: w["p99"])
                errors = sum(w["errors"] + w["exhausted"] for w in windows)
                rps = sum(w["requests"] for w in windows) / max(1e-9, sum(w["duration"] for w in windows))
                lines.append(
                    f"pending polls during the purge: {len(windows)} window(s), {rps:,.1f} rps, worst window "
                    f"p95 {worst['p95']:.2f} ms / p99 {worst['p99']:.2f} ms / max {worst['max']:.2f} ms, "
                    f"errors {errors}"
                )
    flagged = [r for r in _all_rows(data) if r.get("flagged")]
    if flagged:
        lines += ["", "FLAGGED: wrong or missing answers (not counted as successes)"]
        for row in flagged:
            label = row.get("label") or row.get("scenario")
            label = f"[{row['section']}] {label}" if row.get("section") else label
            lines.append(
                f"  {label}: statuses {row.get('statuses', {})}, exhausted {row.get('exhausted', 0)}"
            )
            for sample in row.get("samples", [])[:3]:
                lines.append(f"      {sample[:240]}")
    if data.get("log_errors"):
        lines += ["", "SERVER LOG ERRORS (excerpts; full logs in the run directory)"]
        for where, excerpt in data["log_errors"]:
            lines.append(f"  during {where}: {excerpt}")
    if data.get("profile"):
        lines += ["", f"profile: {data['profile']}"]
    lines += [
        "",
        f"json: {meta.get('json')}",
        f"plot: {meta.get('plot') or '-'}",
        f"logs: {meta.get('logs')}",
        "",
    ]
    return "\n".join(lines)


def _all_rows(data: dict[str, Any]) -> list[dict[str, Any]]:
    rows = [row for section in _sections(data) for row in section["requests"]]
    rows += list(data.get("sweep", []))
    rows += [row for row in (data.get("callbacks") or {}).values() if isinstance(row, dict)]
    scale = data.get("scale") or {}
    rows += [scale[key] for key in ("small", "large", "large_control") if scale.get(key)]
    for window in (scale.get("purge") or {}).get("load_windows", []):
        rows.append({**window, "label": "pending poll during purge"})
    return rows


def write_json(data: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")


def plot(sweep: list[dict[str, Any]], path: Path, title: str) -> None:
    """Throughput and p95 latency against connections, one line per scenario."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series: dict[str, list[dict[str, Any]]] = {}
    for row in sweep:
        series.setdefault(row["label"], []).append(row)
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2), dpi=110)
    for label, rows in series.items():
        rows = sorted(rows, key=lambda r: r["connections"])
        xs = [r["connections"] for r in rows]
        left.plot(xs, [r["rps"] for r in rows], marker="o", label=label)
        right.plot(xs, [r["p95"] for r in rows], marker="o", label=label)
    for axis, ylabel in ((left, "requests/s"), (right, "p95 latency (ms)")):
        axis.set_xscale("log", base=2)
        axis.set_xlabel("concurrent connections (wrk)")
        axis.set_ylabel(ylabel)
        axis.grid(True, which="both", alpha=0.3)
        axis.set_ylim(bottom=0)
        xs = sorted({r["connections"] for r in sweep})
        axis.set_xticks(xs, [str(x) for x in xs])
    left.legend(loc="lower right", fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
