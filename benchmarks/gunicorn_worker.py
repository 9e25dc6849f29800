"""gunicorn's gthread worker, with the number of connections it accepts capped from a file.

All gthread workers wait on one shared listening socket, and a kept-alive connection stays with the
worker that accepted it. wrk opens all its connections at once, and in practice one worker takes
most of them (seen here: 16 of 16 in most runs), so one core serves the whole load while the other
idles, and throughput jumps between runs with the placement. A load balancer in front of the
workers would spread the connections; the harness does the same by writing ``ceil(connections /
workers)`` to ``BENCH_WORKER_CONNECTIONS_FILE`` before each run: a worker at the cap stops accepting
(gthread's own ``worker_connections`` check) and the next connection goes to another worker.
Keep-alive is unchanged (``max_keepalived`` still comes from ``--worker-connections``).
"""

from __future__ import annotations

import os
import time

from gunicorn.workers.gthread import ThreadWorker


class BalancedThreadWorker(ThreadWorker):
    _cap = 0
    _read_at = 0.0

    @property
    def worker_connections(self) -> int:
        now = time.monotonic()
        if now - self._read_at > 0.2:
            self._read_at = now
            try:
                with open(os.environ["BENCH_WORKER_CONNECTIONS_FILE"]) as handle:
                    self._cap = int(handle.read().strip() or 0)
            except (KeyError, OSError, ValueError):
                self._cap = 0
        return self._cap or self.cfg.worker_connections

    @worker_connections.setter
    def worker_connections(self, value: int) -> None:
        pass  # ThreadWorker.__init__ assigns cfg.worker_connections; the property reads it there
