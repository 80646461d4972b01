"""Kapso's per-key rate limit (docs/kapso.md §5.3), shared by every worker through Redis.

Kapso counts requests per API key in fixed one-minute windows (100 to 2,000 by plan) and answers
429 with Retry-After past the limit. Every tenant goes through Switchboard's one key, so there is one
limiter per key for the whole deployment, in Redis:
- requests are spaced so that no minute, wherever Kapso's window starts, holds more than the plan's
  KAPSO_RATE_LIMIT_PER_MINUTE (90% of it evenly spread plus a small burst);
- when Kapso's X-RateLimit-Remaining says the budget is nearly spent, or a 429 says it is, every
  worker holds back until X-RateLimit-Reset / Retry-After.
A request whose slot comes within MAX_WAIT_SECONDS books it and waits for it; beyond that the
caller gets the seconds to wait, with some jitter so that a crowd of deferred sends does not come
back all at once, and decides (the outbox defers the message without using an attempt). If Redis is
unreachable the limiter fails open: Kapso's own 429 still protects the key.
"""

import hashlib
import logging
import random
import time
from functools import cache

import redis
from django.conf import settings

from apps.core.http import parse_retry_after

logger = logging.getLogger(__name__)

SPREAD = 0.9  # share of the limit spread evenly over the window; the rest is burst allowance
NEAR_EMPTY = 0.02  # hold back when Kapso says less than this share of the budget is left
MAX_WAIT_SECONDS = 1.0  # a slot this close is booked and waited for in place

# KEYS: next free slot (ms), paused-until (ms). ARGV: now, interval, burst, max wait (ms).
# GCRA ("theoretical arrival time"): returns {1, ms to wait} with the slot booked, or {0, ms until
# a slot could be booked}.
_ACQUIRE = """
local now = tonumber(ARGV[1])
local paused = tonumber(redis.call('GET', KEYS[2]) or '0')
if paused > now then return {0, paused - now} end
local tat = math.max(tonumber(redis.call('GET', KEYS[1]) or '0'), now)
local wait = math.max(0, tat - now - tonumber(ARGV[3]))
if wait > tonumber(ARGV[4]) then return {0, wait - tonumber(ARGV[4])} end
local nxt = tat + tonumber(ARGV[2])
redis.call('SET', KEYS[1], nxt, 'PX', nxt - now + 1000)
return {1, wait}
"""
# KEYS: paused-until. ARGV: until (ms), now (ms). Only ever extends a pause.
_PAUSE = """
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
local untl = tonumber(ARGV[1])
if untl > current then redis.call('SET', KEYS[1], untl, 'PX', untl - tonumber(ARGV[2]) + 1000) end
return 0
"""


@cache
def _client() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL, socket_timeout=1, socket_connect_timeout=1)


@cache
def _scripts():
    client = _client()
    return client.register_script(_ACQUIRE), client.register_script(_PAUSE)


def _keys(api_key: str) -> tuple[str, str]:
    digest = hashlib.sha256(api_key.encode()).hexdigest()[:16]  # the key itself never goes to Redis
    return f"kapso-rate:{digest}:next", f"kapso-rate:{digest}:paused"


def _window_ms() -> float:
    return settings.KAPSO_RATE_LIMIT_WINDOW_SECONDS * 1000


def acquire(api_key: str, max_wait: float = MAX_WAIT_SECONDS) -> float:
    """Book one request for this key, waiting up to `max_wait` seconds for its slot: returns 0 when
    the request may go now, else the seconds to wait before asking again (nothing booked)."""
    limit = settings.KAPSO_RATE_LIMIT_PER_MINUTE
    if limit <= 0:
        return 0.0
    window = _window_ms()
    interval, burst = window / (limit * SPREAD), window * (1 - SPREAD)
    args = [_now_ms(), int(interval), int(burst), int(max_wait * 1000)]
    try:
        booked, wait_ms = _scripts()[0](keys=list(_keys(api_key)), args=args)
    except redis.RedisError:
        logger.warning("Kapso rate limiter unavailable (Redis); asking without it", exc_info=True)
        return 0.0
    if booked:
        time.sleep(int(wait_ms) / 1000)
        return 0.0
    wait = int(wait_ms) / 1000
    return wait + random.uniform(0, min(wait, window / 1000 / 4))  # spread the crowd that comes back


def observe(api_key: str, status: int, headers) -> None:
    """Learn from Kapso's answer: a 429 pauses every worker for Retry-After; a nearly spent budget
    (X-RateLimit-Remaining) pauses them until X-RateLimit-Reset, before the limit is hit."""
    pause = None
    if status == 429:
        pause = parse_retry_after(headers.get("Retry-After")) or _window_ms() / 1000
    else:
        remaining = _number(headers.get("X-RateLimit-Remaining"))
        limit = _number(headers.get("X-RateLimit-Limit")) or settings.KAPSO_RATE_LIMIT_PER_MINUTE
        if remaining is not None and remaining <= max(1.0, limit * NEAR_EMPTY):
            pause = _reset_seconds(headers.get("X-RateLimit-Reset"))
    if pause:
        pause_for(api_key, pause)


def pause_for(api_key: str, seconds: float) -> None:
    now = _now_ms()
    try:
        _scripts()[1](keys=[_keys(api_key)[1]], args=[now + int(seconds * 1000), now])
    except redis.RedisError:
        logger.warning("Kapso rate limiter unavailable (Redis); pause not shared", exc_info=True)


def _reset_seconds(value) -> float | None:
    """X-RateLimit-Reset as seconds from now: Kapso does not document whether it is a Unix time or a
    number of seconds, so a value past the year 2001 is read as a Unix time."""
    number = _number(value)
    if number is None:
        return None
    seconds = number - time.time() if number > 1e9 else number
    return min(max(seconds, 0.0), _window_ms() / 1000) or None


def _number(value) -> float | None:
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _now_ms() -> int:
    return int(time.time() * 1000)
