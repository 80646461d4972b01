"""Small presentation helpers for the dashboard templates."""

import json
from datetime import datetime

from django import template
from django.urls import reverse
from django.utils import timezone

from apps.conversations.selectors import quoted_messages, window_state

from ..words import send_error_words

register = template.Library()


@register.filter
def error_words(message) -> str:
    return send_error_words(message.error_code, message.error_text)


@register.filter
def error_details(message) -> str:
    """What Kapso or WhatsApp said, when the plain words above don't already say it: Meta's
    `error_data.details`, a Platform API conflict's reason, the link to add Kapso credit."""
    words = send_error_words(message.error_code, message.error_text)
    return "" if not message.error_text or message.error_text in words else message.error_text


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
    parts = [p for p in (name or "").split() if p[0].isalpha()]
    return "".join(p[0] for p in parts[:2]).upper()  # '' for a bare number: the template shows an icon


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
def media_src(message, org_slug: str) -> str:
    """Switchboard's own link to the message's stored media; '' while there is none."""
    if message.media_status != "stored":
        return ""
    return reverse("message-media", args=[org_slug, message.thread_id, message.pk])


@register.filter
def quoted_message(message):
    """The message of the same thread that this one quotes, if we have it."""
    if not message.reply_to_wamid:
        return None
    return quoted_messages(thread=message.thread_id, wamids=[message.reply_to_wamid]).get(message.reply_to_wamid)


@register.filter
def stamp(value: datetime | None) -> str:
    """A message time: '14:05' today, 'Nov 3, 14:05' before."""
    if value is None:
        return ""
    local = timezone.localtime(value)
    if local.date() == timezone.localtime().date():
        return local.strftime("%H:%M")
    return local.strftime("%b %-d, %H:%M")


# Small stroke icons (24×24, drawn by hand for this dashboard) instead of emoji, which not every
# system has a font for.
ICONS = {
    "chat": '<path d="M21 15a2 2 0 0 1-2 2H7l-4 4V5a2 2 0 0 1 2-2h14a2 2 0 0 1 2 2z"/>',
    "phone": '<rect x="5" y="2" width="14" height="20" rx="2"/><path d="M12 18h.01"/>',
    "bot": '<rect x="3" y="8" width="18" height="12" rx="2"/><path d="M12 8V4M8 14h.01M16 14h.01"/>',
    "search": '<circle cx="11" cy="11" r="7"/><path d="m21 21-4.3-4.3"/>',
    "lock": '<rect x="4" y="11" width="16" height="10" rx="2"/><path d="M8 11V7a4 4 0 0 1 8 0v4"/>',
    "mail": '<rect x="3" y="5" width="18" height="14" rx="2"/><path d="m3 7 9 6 9-6"/>',
    "key": '<circle cx="7.5" cy="15.5" r="4.5"/><path d="m10.7 12.3 9.3-9.3M16 7l3 3"/>',
    "image": '<rect x="3" y="3" width="18" height="18" rx="2"/><circle cx="9" cy="9" r="2"/>'
             '<path d="m21 15-5-5L5 21"/>',
    "mic": '<rect x="9" y="2" width="6" height="12" rx="3"/><path d="M5 10a7 7 0 0 0 14 0M12 17v5"/>',
    "paperclip": '<path d="m21.44 11.05-9.19 9.19a6 6 0 0 1-8.49-8.49l8.57-8.57A4 4 0 1 1 18 8.84'
                 'l-8.59 8.57a2 2 0 0 1-2.83-2.83l8.49-8.48"/>',
    "file": '<path d="M14 2H6a2 2 0 0 0-2 2v16a2 2 0 0 0 2 2h12a2 2 0 0 0 2-2V8z"/><path d="M14 2v6h6"/>',
    "video": '<rect x="2" y="6" width="14" height="12" rx="2"/><path d="m22 8-6 4 6 4z"/>',
    "tool": '<path d="M13 2 3 14h9l-1 8 10-12h-9z"/>',
    "clock": '<circle cx="12" cy="12" r="9"/><path d="M12 7v5l3 2"/>',
    "alert": '<path d="M12 3 2 21h20z"/><path d="M12 10v4M12 18h.01"/>',
    "user": '<circle cx="12" cy="8" r="4"/><path d="M4 21a8 8 0 0 1 16 0"/>',
    "check": '<path d="m5 12 5 5L20 7"/>',
}


@register.simple_tag
def icon(name: str, size: int = 20) -> str:
    from django.utils.safestring import mark_safe

    return mark_safe(
        f'<svg class="icon" width="{size}" height="{size}" viewBox="0 0 24 24" fill="none" stroke="currentColor" '
        f'stroke-width="2" stroke-linecap="round" stroke-linejoin="round" aria-hidden="true">{ICONS[name]}</svg>'
    )


@register.inclusion_tag("dashboard/attention.html", takes_context=True)
def attention_badge(context) -> dict:
    """The Inbox link's count of conversations that wait for a person; it refreshes itself."""
    from apps.conversations.selectors import needs_person_count

    request = context["request"]
    return {"request": request, "count": needs_person_count(org=request.org)}


@register.filter
def budget_stopped(org) -> bool:
    """The organization's agents stopped this month: its model budget ran out (agents/budget.py)."""
    from apps.agents.budget import budget_alerted_this_month

    return budget_alerted_this_month(org)


REDACTED_KINDS = {"CARD": ("card number", "card numbers"), "EMAIL": ("email address", "email addresses"),
                  "PHONE": ("phone number", "phone numbers"), "IBAN": ("IBAN", "IBANs")}


@register.filter
def redaction_words(run) -> list[str]:
    """Where personal data was hidden in a turn, one line per place, in words."""
    places = {"input": "Hidden from the model", "output": "Hidden in what the agent sent"}
    lines = []
    for place, counts in (run.redactions or {}).items():
        parts = []
        for kind, count in counts.items():
            one, many = REDACTED_KINDS.get(kind, (f"[{kind}]", f"[{kind}]s"))
            parts.append(f"{count} {one if count == 1 else many}")
        lines.append(f"{places.get(place, place)}: {', '.join(parts)}.")
    return lines


@register.filter
def run_model_words(run) -> str:
    """Which model answered the turn, and whether it was the agent's backup."""
    model = run.model or {}
    if not model.get("name"):
        return ""
    words = f"Answered by {model.get('provider')} · {model['name']}"
    return words + " (the backup model: the main one failed)" if run.answered_by_backup else words
