"""Small HTTP helpers shared by the two outbound edges (Kapso and the model providers)."""

from datetime import UTC, datetime
from email.utils import parsedate_to_datetime


def transient_status(status: int) -> bool:
    """An HTTP answer that time may cure: 408 timeout, 425 too early, 429 rate limited, any 5xx."""
    return status in (408, 425, 429) or status >= 500


def parse_retry_after(value: str | None) -> float | None:
    """Retry-After as seconds; the header may hold a number of seconds or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # HTTP dates are GMT; a zone-less one is read as such
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())
