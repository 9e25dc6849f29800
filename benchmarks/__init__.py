"""Load and latency benchmarks of django-ciba on the example project (issue 4).

Run ``benchmarks/run`` (or ``make bench`` / ``make bench-smoke``); see ``benchmarks/README.rst``.
"""
