"""Prometheus metrics at /metrics, counted in Redis so every process on every host adds to one figure.

Web processes, Celery workers and beat all count here (a webhook in a web worker, a turn in an
`agents` thread, a send in a `default` worker), while only the web serves /metrics: so the counts
live in one Redis hash (`HINCRBYFLOAT`, atomic and ~0.1 ms), not in each process's memory. Losing
Redis resets them, which Prometheus reads as a counter reset. Counting never fails the work that is
counted: Redis errors are logged and dropped.

The figures (the names are the interface; labels are small fixed sets, plus the organization):
- switchboard_webhook_deliveries_total{endpoint, result}: Kapso deliveries by how they were answered
- switchboard_queue_depth{queue}: tasks waiting in each Celery queue, read at scrape time
- switchboard_agent_turn_seconds{outcome}: time from claiming a turn to its end (a histogram)
- switchboard_sends_total{outcome, error_class}: sends to Kapso: sent, retry (transient), postponed (Kapso's
  rate limit), failed, unknown (no answer; the sweeper looks it up)
- switchboard_model_tokens_total{org, kind}: model tokens by organization, input and output
"""

import json
import logging
from collections import defaultdict

import redis
from celery import current_app
from django.conf import settings
from kombu.exceptions import ChannelError
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

logger = logging.getLogger(__name__)

KEY = "switchboard:metrics"
# Seconds; a turn is mostly one or two model calls.
TURN_BUCKETS = (0.5, 1, 2.5, 5, 10, 20, 40, 80)

COUNTERS = {
    "switchboard_webhook_deliveries": ("Kapso webhook deliveries by endpoint and result.", ("endpoint", "result")),
    "switchboard_sends": ("Sends to Kapso by outcome and error class.", ("outcome", "error_class")),
    "switchboard_model_tokens": ("Model tokens by organization and kind (input, output).", ("org", "kind")),
}
HISTOGRAMS = {
    "switchboard_agent_turn_seconds": ("Agent turn duration by outcome.", ("outcome",), TURN_BUCKETS),
}

_client: redis.Redis | None = None


def _redis() -> redis.Redis:
    global _client
    if _client is None:
        _client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=0.5, socket_connect_timeout=0.5)
    return _client


def _field(name: str, labels: dict, suffix: str = "") -> str:
    return json.dumps([name, suffix, sorted((k, str(v)) for k, v in labels.items())])


def inc(name: str, amount: float = 1, **labels) -> None:
    """Add to a counter of COUNTERS."""
    _write({_field(name, labels): amount})


def observe(name: str, value: float, **labels) -> None:
    """Record one observation of a histogram of HISTOGRAMS."""
    buckets = HISTOGRAMS[name][2]
    fields = {_field(name, labels, "count"): 1, _field(name, labels, "sum"): value}
    fields |= {_field(name, {**labels, "le": le}, "bucket"): 1 for le in buckets if value <= le}
    _write(fields)


def _write(fields: dict[str, float]) -> None:
    try:
        pipe = _redis().pipeline(transaction=False)
        for field, amount in fields.items():
            pipe.hincrbyfloat(KEY, field, amount)
        pipe.execute()
    except redis.RedisError as exc:
        logger.warning("a metric was not counted: Redis: %s", exc)


class RedisCollector(Collector):
    """Reads the counts from Redis and the queue depths from the broker when Prometheus scrapes."""

    def collect(self):
        stored = _read()
        for name, (doc, label_names) in COUNTERS.items():
            family = CounterMetricFamily(name, doc, labels=label_names)
            for labels, value in stored[(name, "")].items():
                family.add_metric([dict(labels).get(n, "") for n in label_names], value)
            yield family
        for name, (doc, label_names, buckets) in HISTOGRAMS.items():
            yield _histogram(name, doc, label_names, buckets, stored)
        yield _queue_depths()


def _read() -> dict[tuple[str, str], dict[tuple, float]]:
    stored: dict[tuple[str, str], dict[tuple, float]] = defaultdict(dict)
    try:
        raw = _redis().hgetall(KEY)
    except redis.RedisError as exc:
        logger.warning("metrics could not be read: Redis: %s", exc)
        return stored
    for field, value in raw.items():
        name, suffix, labels = json.loads(field)
        stored[(name, suffix)][tuple(tuple(pair) for pair in labels)] = float(value)
    return stored


def _histogram(name: str, doc: str, label_names: tuple, buckets: tuple, stored) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, doc, labels=label_names)
    for labels, count in stored[(name, "count")].items():
        values = dict(labels)
        cumulative = [
            (str(float(le)), stored[(name, "bucket")].get(tuple(sorted({**values, "le": str(le)}.items())), 0.0))
            for le in buckets
        ]
        family.add_metric(
            [values.get(n, "") for n in label_names],
            buckets=[*cumulative, ("+Inf", count)],
            sum_value=stored[(name, "sum")].get(labels, 0.0),
        )
    return family


def _queue_depths() -> GaugeMetricFamily:
    family = GaugeMetricFamily("switchboard_queue_depth", "Tasks waiting in each Celery queue.", labels=["queue"])
    try:
        with current_app.connection_for_read() as connection:
            channel = connection.default_channel
            for queue in settings.CELERY_TASK_QUEUES:
                family.add_metric([queue.name], _queue_depth(channel, queue.name))
    except Exception as exc:  # noqa: BLE001  (the broker is down or unreachable: scrape the rest)
        logger.warning("queue depths could not be read: %s", exc)
    return family


def _queue_depth(channel, name: str) -> int:
    try:
        return channel.queue_declare(name, passive=True).message_count
    except ChannelError:  # no such queue: Redis drops a list once it is empty, so nothing waits in it
        return 0
