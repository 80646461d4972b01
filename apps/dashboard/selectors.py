"""Reads composed for dashboard pages: a thread as one stream of messages and agent turns."""

from dataclasses import dataclass
from datetime import datetime

from django.db.models import Prefetch

from apps.agents.models import AgentRun, RunStatus, ToolCall
from apps.conversations import selectors as conversations
from apps.conversations.models import Message, Thread

THREAD_PAGE_SIZE = 50
FINISHED = (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.SKIPPED, RunStatus.TIMED_OUT)


@dataclass
class StreamItem:
    """One entry of a thread's stream, in time order: a message bubble or an agent turn's card."""

    kind: str  # "message" | "run"
    obj: Message | AgentRun
    key: datetime  # position in the stream

    @property
    def dom_id(self) -> str:
        return f"{self.kind[0]}-{self.obj.pk}"

    @property
    def version(self) -> str:
        return self.obj.updated_at.isoformat()

    @property
    def sort_key(self) -> str:
        # Microseconds since the epoch, zero-padded so the browser can compare them as strings.
        return f"{int(self.key.timestamp() * 1_000_000):020d}"


def thread_stream(*, thread: Thread, before: datetime | None = None, limit: int = THREAD_PAGE_SIZE):
    """The newest `limit` messages before `before` with the finished turns among them, oldest
    first; and the cursor of the earlier page (None at the beginning). Four queries."""
    messages, earlier = conversations.thread_messages_page(thread=thread, limit=limit, before=before)
    runs = _finished_runs(thread).filter(finished_at__isnull=False)
    if earlier is not None and messages:
        runs = runs.filter(finished_at__gte=messages[0].created_at)
    if before is not None:
        runs = runs.filter(finished_at__lt=before)
    return _merge(messages, runs.order_by("finished_at")[:limit]), earlier


def stream_changes(*, thread: Thread, since: datetime) -> list[StreamItem]:
    """What appeared or changed after `since`: new messages, new ticks, finished turns."""
    messages = conversations.messages_changed_since(thread=thread, since=since)
    runs = _finished_runs(thread).filter(updated_at__gt=since, finished_at__isnull=False).order_by("finished_at")[:50]
    return _merge(messages, runs)


def turn_in_progress(*, thread: Thread) -> bool:
    return AgentRun.objects.filter(thread=thread, status__in=[RunStatus.PENDING, RunStatus.RUNNING]).exists()


def _finished_runs(thread: Thread):
    return AgentRun.objects.filter(thread=thread, status__in=FINISHED).select_related("agent").prefetch_related(
        Prefetch("tool_calls", queryset=ToolCall.objects.order_by("step", "created_at"))
    )


def _merge(messages, runs) -> list[StreamItem]:
    items = [StreamItem("message", m, m.created_at) for m in messages]
    # A plain successful turn is already visible as its reply; show a card only when there is more
    # to see: the tools it used, the knowledge it was given, personal data it hid, a backup model
    # that answered, or that it failed or did not answer.
    items += [StreamItem("run", r, r.finished_at) for r in runs
              if r.status != RunStatus.SUCCEEDED or r.tool_calls.all() or r.passages or r.redactions
              or r.answered_by_backup]
    return sorted(items, key=lambda item: (item.key, item.kind != "run"))
