"""Profiles of the served project under load.

First choice: ``py-spy record`` attached to the gunicorn master and its workers (``--subprocesses``)
while wrk runs, written as a flame graph (SVG) or a speedscope JSON. When py-spy cannot attach
(ptrace refused, e.g. in a container without CAP_SYS_PTRACE), gunicorn is restarted with
``BENCH_PYINSTRUMENT_DIR`` set, which turns on :class:`PyinstrumentMiddleware` (see
``benchmarks/settings.py``): every request is profiled and the sessions are merged per process into
one HTML report and one speedscope file.
"""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any


def py_spy(pids: list[int], out: Path, seconds: float, fmt: str = "flamegraph") -> subprocess.Popen:
    """Start ``py-spy record`` on the gunicorn master (with its workers); returns the process."""
    binary = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    args = [
        binary,
        "record",
        *("--pid", str(pids[0]), "--subprocesses", "--nonblocking", "--rate", "200"),
        *("--duration", str(max(1, round(seconds))), "--format", fmt, "--output", str(out)),
    ]
    return subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


class PyinstrumentMiddleware:
    """Profile every request with pyinstrument; merge per process; write every 500 requests and at exit."""

    EVERY = 500

    def __init__(self, get_response: Any) -> None:
        self.get_response = get_response
        self.directory = Path(os.environ["BENCH_PYINSTRUMENT_DIR"])
        self.directory.mkdir(parents=True, exist_ok=True)
        self.lock = threading.Lock()
        self.session = None
        self.count = 0
        atexit.register(self.write)

    def __call__(self, request: Any) -> Any:
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.0005, async_mode="disabled")
        profiler.start()
        try:
            return self.get_response(request)
        finally:
            profiler.stop()
            self.add(profiler.last_session)

    def add(self, session: Any) -> None:
        from pyinstrument.session import Session

        with self.lock:
            self.session = session if self.session is None else Session.combine(self.session, session)
            self.count += 1
            due = self.count % self.EVERY == 0
        if due:
            self.write()

    def write(self) -> None:
        from pyinstrument.renderers import HTMLRenderer, SpeedscopeRenderer

        with self.lock:
            session = self.session
        if session is None:
            return
        stem = self.directory / f"pyinstrument-{os.getpid()}"
        stem.with_suffix(".html").write_text(HTMLRenderer().render(session))
        stem.with_suffix(".speedscope.json").write_text(SpeedscopeRenderer().render(session))


def profile_pending(stack: Any, scenario: Any, args: Any, log: Any) -> str:
    """Profile the server during a pending-poll run; returns the artefact's path ("" if none)."""
    import time

    from . import load

    seconds = max(10.0, args.duration)
    run_dir = Path(stack.directory)
    stem = run_dir.parent / run_dir.name.removesuffix("-logs")
    if args.profiler in ("auto", "py-spy"):
        suffix = {"flamegraph": "svg", "speedscope": "speedscope.json", "raw": "collapsed.txt"}[
            args.profile_format
        ]
        out = Path(f"{stem}-profile-pending-poll.{suffix}")
        spy = py_spy(stack.gunicorn_pids(), out, seconds, args.profile_format)
        time.sleep(1.0)  # py-spy attaches to every worker first
        load.run(scenario, stack.base_url, connections=args.connections, duration=seconds)
        try:
            output, _ = spy.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            spy.kill()
            output, _ = spy.communicate()
        if spy.returncode == 0 and out.exists():
            return str(out)
        log(f"py-spy failed ({spy.returncode}): {output.decode(errors='replace')[-400:]}")
        if args.profiler == "py-spy":
            return ""
    directory = Path(f"{stem}-pyinstrument")
    log("profiling with pyinstrument (gunicorn restarted with BENCH_PYINSTRUMENT_DIR)")
    stack.stop_gunicorn()
    stack.env["BENCH_PYINSTRUMENT_DIR"] = str(directory)
    stack.start_gunicorn()
    load.run(scenario, stack.base_url, connections=args.connections, duration=seconds)
    stack.stop_gunicorn()  # the workers write their merged profiles as they exit
    return str(directory)
