"""Reading times that users and other systems send."""

from datetime import datetime

from django.utils.dateparse import parse_datetime


def parse_time(value: object) -> datetime | None:
    """An ISO 8601 time, or None for anything else. Django's parse_datetime returns None for text
    that is not shaped like a time but raises for a well-shaped impossible one (2026-02-30,
    hour 25): a cursor from a URL or an API body must never turn into a 500."""
    if not isinstance(value, str):
        return None
    try:
        return parse_datetime(value.strip())
    except ValueError:
        return None
