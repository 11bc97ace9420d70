"""Prometheus metrics: API requests by route template and status, FHIR calls by outcome, retries.

Labels carry route templates, FHIR operation names (method + resource type) and outcome
classes only, never ids, keys or anything from a request body.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

__all__ = ["Metrics", "CONTENT_TYPE_LATEST"]


class Metrics:
    """One registry per app, so tests and several apps in a process never collide."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "infusion_fhir_http_requests_total", "API requests", ["method", "route", "status"], registry=self.registry
        )
        self.request_seconds = Histogram(
            "infusion_fhir_http_request_seconds",
            "API request latency",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.fhir_calls = Counter(
            "infusion_fhir_fhir_calls_total",
            "Requests to the FHIR server",
            ["operation", "outcome"],
            registry=self.registry,
        )
        self.fhir_seconds = Histogram(
            "infusion_fhir_fhir_call_seconds",
            "FHIR server request latency",
            ["operation"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.retries = Counter(
            "infusion_fhir_fhir_retries_total", "Retried FHIR requests", ["operation"], registry=self.registry
        )

        self.audit_sink_failures = Counter(
            "infusion_fhir_audit_sink_failures_total",
            "Audit events a sink could not record",
            ["sink"],
            registry=self.registry,
        )

    def audit_sink_failed(self, sink: str) -> None:
        self.audit_sink_failures.labels(sink).inc()

    # The FHIR client's observer interface.
    def fhir_call(self, operation: str, outcome: str, seconds: float) -> None:
        self.fhir_calls.labels(operation, outcome).inc()
        self.fhir_seconds.labels(operation).observe(seconds)

    def fhir_retry(self, operation: str) -> None:
        self.retries.labels(operation).inc()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
