"""Prometheus metrics, one registry per app (never the process-global one)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

_KINDS = {b"input": "prompt", b"output": "completion"}  # the Responses and Messages APIs' names
_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("evalctl_requests", "Requests proxied to engines", ["model", "endpoint", "status"],
                                registry=self.registry)
        self.latency = Histogram("evalctl_request_latency_seconds", "Time to the last byte of the response",
                                 ["model", "endpoint"], buckets=_BUCKETS, registry=self.registry)
        self.tokens = Counter("evalctl_tokens", "Tokens reported by the engines' usage", ["model", "kind"],
                              registry=self.registry)
        self.retries = Counter("evalctl_retries", "Requests retried on another replica after an early failure",
                               ["engine", "reason"], registry=self.registry)
        self.replica_requests = Counter("evalctl_replica_requests", "Requests answered, per replica",
                                        ["engine", "replica"], registry=self.registry)
        self.errors = Counter("evalctl_errors", "Requests answered with an error", ["model", "type"],
                              registry=self.registry)
        self.disconnects = Counter("evalctl_client_disconnects", "Requests whose client left before the answer "
                                   "was complete (the engine is told to stop)", ["endpoint"], registry=self.registry)

    def observe(self, model: str, endpoint: str, status: int, seconds: float,
                usage: list[tuple[bytes, bytes]] = ()) -> None:
        self.requests.labels(model, endpoint, str(status)).inc()
        self.latency.labels(model, endpoint).observe(seconds)
        if status >= 400:
            self.errors.labels(model, f"http_{status}").inc()
        for kind, n in usage:  # a stream reports usage once; a response body once per request
            self.tokens.labels(model, _KINDS.get(kind, kind.decode())).inc(int(n))

    def retry(self, engine: str, reason: str) -> None:
        self.retries.labels(engine, reason).inc()

    def error(self, model: str, type_: str) -> None:
        self.errors.labels(model, type_).inc()

    def client_gone(self, endpoint: str) -> None:
        self.disconnects.labels(endpoint).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
