"""Outbound pacing, shared by every worker through Redis.

Meta limits how fast a number may send (throughput) and how often one contact may be messaged
(pair rate, error 131056). Each send reserves a slot on two clocks — the number's and the
contact's — atomically in Redis, so split replies and bursts stay under the limits however many
workers send. If Redis is unreachable, pacing fails open: a late message is worse than a fast one.
"""

import logging
import time
from functools import cache

import redis
from django.conf import settings

logger = logging.getLogger(__name__)

# KEYS: number clock, contact clock. ARGV: now (ms), number interval (ms), contact gap (ms).
# Returns 0 and books both slots when both clocks allow it now, else the milliseconds to wait.
_RESERVE = """
local now = tonumber(ARGV[1])
local number_at = tonumber(redis.call('GET', KEYS[1]) or '0')
local contact_at = tonumber(redis.call('GET', KEYS[2]) or '0')
local ready = math.max(number_at, contact_at)
if ready > now then return ready - now end
redis.call('SET', KEYS[1], now + tonumber(ARGV[2]), 'PX', tonumber(ARGV[2]) + 1000)
redis.call('SET', KEYS[2], now + tonumber(ARGV[3]), 'PX', tonumber(ARGV[3]) + 1000)
return 0
"""


@cache
def _script():
    client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=1, socket_connect_timeout=1)
    return client.register_script(_RESERVE)


def reserve(*, connection_id, thread_id) -> float:
    """Book the next send for this number and contact; returns 0, or seconds to wait first."""
    per_second = settings.OUTBOX_MAX_PER_SECOND_PER_NUMBER
    interval_ms = int(1000 / per_second) if per_second > 0 else 0
    gap_ms = int(settings.OUTBOX_MIN_GAP_PER_CONTACT_SECONDS * 1000)
    if interval_ms == 0 and gap_ms == 0:
        return 0.0
    keys = [f"pace:number:{connection_id}", f"pace:contact:{thread_id}"]
    try:
        wait_ms = _script()(keys=keys, args=[int(time.time() * 1000), interval_ms, gap_ms])
    except redis.RedisError:
        logger.warning("pacing unavailable (Redis); sending without it", exc_info=True)
        return 0.0
    return int(wait_ms) / 1000
