"""The live part of a thread page (and of the playground), shared by both.

The page polls `…/updates/?since=<time>` every two seconds. The answer carries the stream items
created or changed since then — each with its id and version, so the browser inserts new ones in
time order and replaces changed ones (a tick that turned blue) — plus the next poller. `since`
runs 15 seconds behind the server's clock: a row written by a transaction that committed late
still shows up, and an item seen twice is simply skipped by the browser. The reply box is never
part of an answer, so nothing the operator is typing is lost.
"""

from datetime import datetime, timedelta

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone

from apps.core.dates import parse_time

OVERLAP = timedelta(seconds=15)
MAX_LOOKBACK = timedelta(minutes=10)


def parse_since(request: HttpRequest) -> datetime:
    now = timezone.now()
    since = parse_time(request.GET.get("since", "").replace(" ", "+"))
    if since is None or since.tzinfo is None:
        return now - OVERLAP
    return max(since, now - MAX_LOOKBACK)  # bounded: a tab asleep for a day does not fetch a day


def stream_response(
    request: HttpRequest, items: list, *, poll_url: str = "", now: datetime | None = None, error: str | None = None,
    sent: bool = False, thinking: bool | None = None, state_template: str = "", context: dict | None = None,
) -> HttpResponse:
    """`error`: None leaves the reply box's error line alone, '' clears it. `thinking`: None leaves
    the "agent is writing" line alone. `state_template`: a partial with the page's other live parts."""
    next_since = ((now or timezone.now()) - OVERLAP).isoformat()
    response = render(request, "dashboard/thread.html#stream_update", {
        "items": items, "poll_url": poll_url, "since": next_since, "error": error, "thinking": thinking,
        "state_template": state_template, "own": sent, **(context or {}),
    })
    if sent:
        response["HX-Trigger"] = "stream-sent"  # the form clears its text only when the message is stored
    return response
