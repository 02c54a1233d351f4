"""What pyea tells its operator: structured, scrubbed JSON logs and the Prometheus metrics.

Owns the log format and secret scrubbing, the per-request log context, the log throttle, and every metric with
its labels. Kept apart so any layer can log and count without depending on where the work happens.

May import: ``app.core``.
"""
