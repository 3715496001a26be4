"""Counters and histograms for `GET /metrics`, in Prometheus' text format (0.0.4):
requests and errors by endpoint, request latency, and the size of each model call."""

from __future__ import annotations

import bisect
import threading
from collections import Counter

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class Histogram:
    def __init__(self, buckets: tuple) -> None:
        self.buckets = buckets
        self.counts = [0] * (len(buckets) + 1)  # the last one: above every bucket
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.buckets, value)] += 1
        self.total += value

    def lines(self, name: str, labels: str = "") -> list[str]:
        out, running = [], 0
        sep = "," if labels else ""
        for bound, count in zip(self.buckets, self.counts):
            running += count
            out.append(f'{name}_bucket{{{labels}{sep}le="{bound}"}} {running}')
        running += self.counts[-1]
        out.append(f'{name}_bucket{{{labels}{sep}le="+Inf"}} {running}')
        braces = f"{{{labels}}}" if labels else ""
        out += [f"{name}_sum{braces} {self.total:.6f}", f"{name}_count{braces} {running}"]
        return out


class Metrics:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: Counter[tuple[str, int]] = Counter()
        self.latency: dict[str, Histogram] = {}
        self.batches = Histogram(BATCH_BUCKETS)
        self.images = 0

    def request(self, endpoint: str, status: int, seconds: float) -> None:
        with self._lock:
            self.requests[endpoint, status] += 1
            self.latency.setdefault(endpoint, Histogram(LATENCY_BUCKETS)).observe(seconds)

    def batch(self, size: int) -> None:
        with self._lock:
            self.batches.observe(size)
            self.images += size

    def render(self) -> str:
        with self._lock:
            lines = [
                "# HELP imgcls_requests_total HTTP requests by endpoint and status code.",
                "# TYPE imgcls_requests_total counter",
            ]
            for (endpoint, status), count in sorted(self.requests.items()):
                lines.append(
                    f'imgcls_requests_total{{endpoint="{endpoint}",status="{status}"}} {count}'
                )
            lines += [
                "# HELP imgcls_request_errors_total Requests answered 400 or above.",
                "# TYPE imgcls_request_errors_total counter",
            ]
            errors: Counter[str] = Counter()
            for (endpoint, status), count in self.requests.items():
                errors[endpoint] += count if status >= 400 else 0
            for endpoint, count in sorted(errors.items()):
                lines.append(f'imgcls_request_errors_total{{endpoint="{endpoint}"}} {count}')
            lines += [
                "# HELP imgcls_request_seconds Time from request to response.",
                "# TYPE imgcls_request_seconds histogram",
            ]
            for endpoint, histogram in sorted(self.latency.items()):
                lines += histogram.lines("imgcls_request_seconds", f'endpoint="{endpoint}"')
            lines += [
                "# HELP imgcls_batch_size Images in each model call.",
                "# TYPE imgcls_batch_size histogram",
                *self.batches.lines("imgcls_batch_size"),
                "# HELP imgcls_images_total Images the model classified.",
                "# TYPE imgcls_images_total counter",
                f"imgcls_images_total {self.images}",
            ]
        return "\n".join(lines) + "\n"
