"""What an operator watches: Prometheus metrics and OpenTelemetry traces.

`hooks` is the seam the engine and the executor report to (no third-party imports);
`metrics` defines the Prometheus families and `prometheus_tap` feeds them from each
billed attempt and each request end; `gauges` samples breakers and budgets at scrape
time; `exposition` renders `/metrics` (aggregated across workers when
`PROMETHEUS_MULTIPROC_DIR` is set); `otel` turns traces on from the standard
environment and `tracing` writes the spans (the `otel` extra).
"""
