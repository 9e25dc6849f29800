"""Load and latency benchmarks of django-ciba on the example project.

Run ``benchmarks/run`` (or ``make bench`` / ``make bench-smoke``); see ``benchmarks/README.rst``.
"""
