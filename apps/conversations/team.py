"""Team work on threads: assignment, labels, internal notes, canned replies."""

import re

from django.db import IntegrityError, transaction
from django.utils import timezone

from .models import CannedReply, Handoff, Note, Thread

MAX_LABELS = 10
MAX_NOTE = 5000


class TeamInvalid(ValueError):
    """A change that cannot be made; the message is for the operator. Nothing was written."""


def thread_assign(*, thread: Thread, user) -> None:
    """Give the thread to a member (None: to nobody). Assigning takes it from the agent: a person
    now answers it. The caller checks that `user` is a member of the thread's org."""
    now = timezone.now()
    changes = {"assigned_to": user, "updated_at": now}
    if user is not None and thread.handoff != Handoff.HUMAN:
        changes.update(handoff=Handoff.HUMAN, handoff_at=now)
    Thread.objects.filter(pk=thread.pk).update(**changes)
    for name, value in changes.items():
        setattr(thread, name, value)


def thread_labels_set(*, thread: Thread, labels: list[str]) -> list[str]:
    """Replace the thread's labels: lowercase words (letters, digits, - and _), at most MAX_LABELS."""
    clean = []
    for label in labels:
        label = label.strip().lower()
        if not label:
            continue
        if not re.fullmatch(r"[\w-]{1,40}", label):
            raise TeamInvalid(f"“{label}” is not a label: use one word of letters, digits, - or _ (up to 40).")
        clean.append(label)
    clean = list(dict.fromkeys(clean))
    if len(clean) > MAX_LABELS:
        raise TeamInvalid(f"A conversation takes at most {MAX_LABELS} labels.")
    Thread.objects.filter(pk=thread.pk).update(labels=clean, updated_at=timezone.now())
    thread.labels = clean
    return clean


def note_add(*, thread: Thread, author, text: str) -> Note:
    text = (text or "").strip()
    if not text:
        raise TeamInvalid("Write the note first.")
    if len(text) > MAX_NOTE:
        raise TeamInvalid(f"A note has at most {MAX_NOTE} characters.")
    return Note.objects.create(org_id=thread.org_id, thread=thread, author=author, text=text)


def canned_reply_create(*, org, shortcut: str, text: str) -> CannedReply:
    shortcut, text = (shortcut or "").strip().lstrip("/").lower(), (text or "").strip()
    if not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,39}", shortcut):
        raise TeamInvalid("The shortcut is one word of lowercase letters, digits, - or _, like “hours”.")
    if not text:
        raise TeamInvalid("Write the reply's text.")
    try:
        with transaction.atomic():
            return CannedReply.objects.create(org=org, shortcut=shortcut, text=text)
    except IntegrityError:
        raise TeamInvalid(f"The shortcut /{shortcut} is already taken.") from None
