"""Prometheus metrics of the gateway: one place that defines every series it exports."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, disable_created_metrics

# No ``*_created`` series: they double every counter's series count and no dashboard reads them.
disable_created_metrics()

__all__ = [
    "ACHIEVED_MSSSIM",
    "BACKEND_ERRORS",
    "BACKEND_LATENCY",
    "BACKEND_RESTARTS",
    "BITS_PER_PIXEL",
    "BYTES_IN",
    "BYTES_OUT",
    "ITERATIONS_PER_PATCH",
    "JOBS_FINISHED",
    "JOBS_IN_FLIGHT",
    "JOBS_QUEUED",
    "PATCHES_PER_REQUEST",
    "REQUESTS",
    "REQUESTS_IN_FLIGHT",
    "REQUEST_LATENCY",
    "STORE_BYTES",
    "STORE_ERRORS",
    "STORE_EVICTIONS",
    "TARGET_MISSED",
]

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0, 60.0)

REQUESTS = Counter(
    "rgic_http_requests_total", "HTTP requests by route and status.", ["route", "method", "status"]
)
REQUEST_LATENCY = Histogram(
    "rgic_http_request_duration_seconds",
    "HTTP request latency.",
    ["route", "method"],
    buckets=_LATENCY_BUCKETS,
)
REQUESTS_IN_FLIGHT = Gauge("rgic_http_requests_in_flight", "HTTP requests being served.")
BACKEND_LATENCY = Histogram(
    "rgic_backend_call_duration_seconds",
    "Model backend gRPC call latency by signature and outcome.",
    ["signature", "outcome"],
    buckets=_LATENCY_BUCKETS,
)
BACKEND_ERRORS = Counter(
    "rgic_backend_errors_total",
    "Failed model backend calls by signature and gRPC code.",
    ["signature", "code"],
)
BACKEND_RESTARTS = Counter(
    "rgic_backend_restarts_total",
    "Restarts of the embedded model backend by rgic serve after it died.",
)
PATCHES_PER_REQUEST = Histogram(
    "rgic_patches_per_request",
    "Rate-control patches per compressed image.",
    buckets=(1, 4, 16, 64, 256, 1024, 4096),
)
ITERATIONS_PER_PATCH = Histogram(
    "rgic_iterations_per_patch", "Iterations spent on each patch.", buckets=tuple(range(0, 17))
)
BITS_PER_PIXEL = Histogram(
    "rgic_compressed_bpp",
    "Bits per pixel (bpp) of compressed images.",
    buckets=(0.0625, 0.125, 0.25, 0.5, 0.75, 1, 1.5, 2, 3),
)
ACHIEVED_MSSSIM = Histogram(
    "rgic_achieved_msssim",
    "MS-SSIM of compressed images.",
    buckets=(0.8, 0.85, 0.9, 0.93, 0.95, 0.97, 0.98, 0.99, 1.0),
)
TARGET_MISSED = Counter(
    "rgic_target_missed_total", "Compressions whose quality or size target was not met.", ["kind"]
)
BYTES_IN = Counter("rgic_bytes_in_total", "Request body bytes received, by route.", ["route"])
BYTES_OUT = Counter("rgic_bytes_out_total", "Response body bytes sent, by route.", ["route"])
STORE_BYTES = Gauge("rgic_store_bytes", "Bytes the local blob directory holds (its cap bounds it).")
STORE_EVICTIONS = Counter(
    "rgic_store_evictions_total", "Blobs removed from the local directory, by reason.", ["reason"]
)
STORE_ERRORS = Counter(
    "rgic_store_errors_total",
    "Blob store calls that failed, by operation and error code.",
    ["operation", "code"],
)
JOBS_QUEUED = Gauge("rgic_jobs_queued", "Asynchronous jobs waiting in the queue (shared across replicas).")
JOBS_IN_FLIGHT = Gauge("rgic_jobs_in_flight", "Asynchronous jobs this process is running.")
JOBS_FINISHED = Counter(
    "rgic_jobs_finished_total", "Asynchronous jobs ended, by kind and status.", ["kind", "status"]
)
