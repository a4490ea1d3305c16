"""Prometheus metrics common to every service, declared once in a typed object.

The object is built from a registry passed in, so tests and several services in one
process never collide on the global registry (pattern of faust's Prometheus sensor).
Exposition: https://prometheus.github.io/client_python/.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

#: Latency buckets in seconds, from 1 ms to 10 s.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class ServiceMetrics:
    """Metrics every service exports, prefixed ``vigie_``.

    Attributes:
        records_in: records consumed, by topic.
        records_out: records produced, by topic.
        errors: errors by kind (decode, dead_letter, source, ...).
        stage_seconds: ``stage_seconds(stage, camera="")``: the histogram of one stage's seconds; ``camera``
            names the camera for a stage that works on one camera's record (the detector's decode, the
            correlator's correlate), empty for one that works on a batch of cameras (the analytics).
            Bounded by the cameras of the site (~350), each with 16 series per stage.
        end_to_end_seconds: capture time to publication of this service's output, seconds.
        consumer_lag: records behind the high watermark, summed over the assignment.
    """

    def __init__(self, service: str, registry: CollectorRegistry) -> None:
        self.registry = registry
        labels = {"service": service}
        self.records_in = Counter("vigie_records_in", "Records consumed", ["topic"], registry=registry).labels
        self.records_out = Counter("vigie_records_out", "Records produced", ["topic"], registry=registry).labels
        self.errors = Counter("vigie_errors", "Errors by kind", ["kind"], registry=registry).labels
        self._stage_seconds = Histogram(
            "vigie_stage_seconds", "Seconds spent per stage, per camera where the stage works on one camera's record",
            ["stage", "camera"], buckets=LATENCY_BUCKETS, registry=registry)
        self.end_to_end_seconds = Histogram(
            "vigie_end_to_end_seconds",
            "Seconds from frame capture to this service's output",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.consumer_lag = Gauge("vigie_consumer_lag", "Records behind the high watermark", registry=registry)
        self.info = Gauge("vigie_service_info", "Service identity", list(labels), registry=registry)
        self.info.labels(**labels).set(1)

    def stage_seconds(self, stage: str, camera: str = "") -> Histogram:
        """The histogram of ``stage`` (for ``camera``, "" when the stage works on a batch of cameras)."""
        return self._stage_seconds.labels(stage, camera)
