"""Small presentation helpers for the dashboard templates."""

import json
from datetime import datetime

from django import template
from django.utils import timezone

from apps.conversations.selectors import window_state

from ..words import send_error_words

register = template.Library()


@register.filter
def error_words(message) -> str:
    return send_error_words(message.error_code, message.error_text)


@register.filter
def pretty_json(value) -> str:
    try:
        return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True, default=str)
    except (TypeError, ValueError):
        return str(value)


@register.filter
def pretty_body(body: str) -> str:
    """A stored webhook body, indented when it is JSON."""
    try:
        return json.dumps(json.loads(body), indent=2, ensure_ascii=False)
    except (TypeError, ValueError):
        return body


@register.filter
def milliseconds(value) -> str:
    value = int(value or 0)
    return f"{value} ms" if value < 1000 else f"{value / 1000:.1f} s"


@register.filter
def run_seconds(run) -> str:
    if run.started_at and run.finished_at:
        return milliseconds((run.finished_at - run.started_at).total_seconds() * 1000)
    return ""


@register.filter
def filesize(value) -> str:
    if not isinstance(value, int):
        return ""
    for unit in ("bytes", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    return ""


@register.filter
def initials(name: str) -> str:
    parts = [p for p in (name or "").replace("+", "").split() if p]
    letters = "".join(p[0] for p in parts[:2]).upper()
    return letters or "?"


@register.simple_tag
def window(thread) -> dict:
    """The 24-hour window as the thread header shows it."""
    state = window_state(thread=thread)
    seconds = state["seconds_left"]
    hours, minutes = divmod(seconds // 60, 60)
    left = f"{hours} h {minutes:02d} min" if hours else f"{minutes} min"
    return {**state, "left": left, "urgent": state["open"] and seconds < 3600}


@register.filter
def since(value: datetime | None) -> str:
    """Compact age: 'now', '5m', '3h', '2d', or a date."""
    if value is None:
        return ""
    seconds = (timezone.now() - value).total_seconds()
    if seconds < 60:
        return "now"
    if seconds < 3600:
        return f"{int(seconds // 60)}m"
    if seconds < 86400:
        return f"{int(seconds // 3600)}h"
    if seconds < 7 * 86400:
        return f"{int(seconds // 86400)}d"
    return timezone.localtime(value).strftime("%b %-d")


@register.filter
def media_kind(message) -> str:
    """How to show a message's media: image, audio, video, document, sticker, or ''."""
    kind = message.type
    if kind in ("image", "audio", "video", "document", "sticker"):
        return kind
    return ""


@register.filter
def stamp(value: datetime | None) -> str:
    """A message time: '14:05' today, 'Nov 3, 14:05' before."""
    if value is None:
        return ""
    local = timezone.localtime(value)
    if local.date() == timezone.localtime().date():
        return local.strftime("%H:%M")
    return local.strftime("%b %-d, %H:%M")
