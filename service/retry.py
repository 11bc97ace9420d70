"""The one retry policy: which failures are temporary, and how long to wait before trying again."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx

TEMPORARY_STATUS = frozenset({408, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter, bounded by attempts and by total time.

    `sleep` is the seam that makes tests instant: pass a fake that records the delays.
    """

    max_attempts: int = 5
    max_total_s: float = 60.0
    backoff_base_s: float = 0.25
    backoff_cap_s: float = 8.0
    retry_after_cap_s: float = 30.0
    sleep: Callable[[float], Awaitable[None]] = field(default=asyncio.sleep, compare=False)
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def backoff(self, attempt: int) -> float:
        """Delay before retry number `attempt` (1-based): full jitter under an exponential cap."""
        ceiling = min(self.backoff_cap_s, self.backoff_base_s * (2 ** (attempt - 1)))
        return self.rng.uniform(0, ceiling)

    def delay(self, attempt: int, response: httpx.Response | None) -> float:
        """Retry-After (capped) when the server gave one, else the jittered backoff."""
        if response is not None:
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            if retry_after is not None:
                return min(retry_after, self.retry_after_cap_s)
        return self.backoff(attempt)


def is_temporary(response: httpx.Response | None, error: Exception | None) -> bool:
    """Transport errors and 408/429/5xx-gateway answers are worth another try; nothing else."""
    if error is not None:
        return isinstance(error, httpx.TransportError)
    return response is not None and response.status_code in TEMPORARY_STATUS


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or HTTP-date); None when absent or bad."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())
