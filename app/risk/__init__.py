"""Abuse resistance for the sign-in endpoints: rate limits (GCRA) and failure-spike locks.

``limits`` holds the rate limiter and its defaults, ``anomaly`` the failure-spike detector; both keep
their state in this process (``memory``) or in Redis shared by every replica (``redis_backend``).
The HTTP face supplies the client IP (``app.http.client_ip``) and renders ``RateLimited`` as 429.
"""

from app.risk.anomaly import AnomalyDetector, LockEvent
from app.risk.counters import CounterStore, MemoryCounterStore
from app.risk.errors import RateLimited
from app.risk.gcra import Limit, Verdict
from app.risk.limits import DEFAULT_LIMITS, LimiterBackend, RateLimiter
from app.risk.memory import MemoryBackend
from app.risk.redis_backend import RedisBackend, RedisCounterStore

__all__ = [
    "DEFAULT_LIMITS",
    "AnomalyDetector",
    "CounterStore",
    "Limit",
    "LimiterBackend",
    "LockEvent",
    "MemoryBackend",
    "MemoryCounterStore",
    "RateLimited",
    "RateLimiter",
    "RedisBackend",
    "RedisCounterStore",
    "Verdict",
]
