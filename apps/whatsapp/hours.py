"""Business hours of a number: `{"timezone": "Europe/Madrid", "days": ["mon", …], "start": "09:00",
"end": "18:00"}`; an empty dict means always open. Plain functions over that dict."""

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class HoursInvalid(ValueError):
    """Business hours that cannot be used; the message says what to fix."""


def hours_clean(value: object) -> dict:
    """The business hours in their stored shape, or HoursInvalid. `{}` or None turns them off."""
    if not value:
        return {}
    if not isinstance(value, dict):
        raise HoursInvalid("Business hours must be an object with timezone, days, start and end.")
    try:
        ZoneInfo(str(value.get("timezone") or ""))
    except (ZoneInfoNotFoundError, ValueError):
        raise HoursInvalid("Unknown time zone; use a name like Europe/Madrid or America/New_York.") from None
    days = value.get("days")
    if not isinstance(days, list) or not days or any(day not in DAYS for day in days):
        raise HoursInvalid(f"`days` must list some of: {', '.join(DAYS)}.")
    start, end = _time(value.get("start"), "start"), _time(value.get("end"), "end")
    if start >= end:
        raise HoursInvalid("The opening time must be before the closing time.")
    return {"timezone": value["timezone"], "days": [d for d in DAYS if d in days],
            "start": start.strftime("%H:%M"), "end": end.strftime("%H:%M")}


def _time(value: object, name: str) -> time:
    try:
        return datetime.strptime(str(value), "%H:%M").time()  # also "9:00"
    except ValueError:
        raise HoursInvalid(f"`{name}` must be a time like 09:00.") from None


def hours_open(hours: dict, now: datetime) -> bool:
    if not hours:
        return True
    local = now.astimezone(ZoneInfo(hours["timezone"]))
    start, end = time.fromisoformat(hours["start"]), time.fromisoformat(hours["end"])
    return DAYS[local.weekday()] in hours["days"] and start <= local.time() < end


def hours_next_opening(hours: dict, now: datetime) -> datetime | None:
    """The next moment the team is in (local time of the hours), or None when always open."""
    if not hours:
        return None
    zone = ZoneInfo(hours["timezone"])
    local = now.astimezone(zone)
    start = time.fromisoformat(hours["start"])
    for offset in range(8):
        day = local.date() + timedelta(days=offset)
        opening = datetime.combine(day, start, tzinfo=zone)
        if DAYS[day.weekday()] in hours["days"] and opening > local:
            return opening
    return None


def hours_describe(hours: dict) -> str:
    """"Mon–Fri 09:00–18:00 (Europe/Madrid)" for messages and pages."""
    if not hours:
        return "always"
    days = [d.capitalize() for d in hours["days"]]
    indexes = [DAYS.index(d) for d in hours["days"]]
    contiguous = len(days) > 2 and indexes == list(range(indexes[0], indexes[0] + len(indexes)))
    label = f"{days[0]}–{days[-1]}" if contiguous else ", ".join(days)
    return f"{label} {hours['start']}–{hours['end']} ({hours['timezone']})"
