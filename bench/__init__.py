"""Benchmark of otel-host-agent against Prometheus node_exporter and the Python
system-metrics instrumentation, each in its own process on this machine.

Run it from the repository root with ``python -m bench`` (or ``make bench``);
``python -m bench --quick`` is the short run of the smoke test. Every CPU and
memory figure comes from the kernel's accounting of each process (/proc/PID/stat
and /proc/PID/status), read by this benchmark from outside the process.
"""
