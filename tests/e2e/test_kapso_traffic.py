"""Real Kapso traffic end to end (gunicorn, Celery workers, beat, the local Kapso stand-in), with time
compressed through settings:

- an outage in which every webhook to Switchboard fails and Kapso gives up after its retries: after
  recovery, catch-up answers every message of the window once, or flags it for a person when it is
  older than the age limit; none is answered twice;
- Kapso's per-key plan limit of 100 requests a minute (a 6-second "minute" here) with 300 replies
  due: none fails, and Kapso never has to refuse one.
"""

import time
from datetime import timedelta

import httpx
import pytest
from django.utils import timezone

from apps.agents.models import AgentRun
from apps.conversations import services
from apps.conversations.models import Message
from tests.e2e.conftest import inbound_payload, sends, settle, wait_until
from tests.factories import make_thread
from tests.fakes.kapso_server import inbound_history_row

pytestmark = pytest.mark.e2e

KAPSO_RETRY_DELAYS = (0.2, 0.5, 1.0)  # Kapso's 10 s, 40 s, 90 s, compressed


def kapso_delivers(stack, payload: dict) -> bool:
    """What Kapso does with a delivery: try, retry on the documented schedule, then give up for good
    (the message then exists only in Kapso's history). Returns whether Switchboard took it."""
    for delay in (0.0, *KAPSO_RETRY_DELAYS):
        time.sleep(delay)
        try:
            if stack.post(payload, timeout=2.0).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
    return False


def contact_writes(fake_kapso, stack, *, n: int, seconds_ago: float) -> tuple[str, bool]:
    """A contact's message reaches Kapso (its history) and Kapso tries to deliver it."""
    phone = f"1555010{n:04d}"
    wamid = f"wamid.outage.{n}"
    row = inbound_history_row(wamid, f"message {n}", seconds_ago=seconds_ago, phone=phone, name=f"Contact {n}")
    fake_kapso.history.insert(0, row)
    payload = inbound_payload(wamid=wamid, phone=f"+{phone}", text=f"message {n}", name=f"Contact {n}")
    payload["message"]["timestamp"] = row["timestamp"]
    return wamid, kapso_delivers(stack, payload)


@pytest.mark.slow  # two stack starts and a settle: about 70 s on a loaded machine
def test_after_an_outage_every_missed_message_is_answered_once_or_flagged(tenant, start_stack, fake_kapso):
    env = {"KAPSO_CATCHUP_INTERVAL_SECONDS": "2", "KAPSO_CATCHUP_MAX_AGE_SECONDS": "60", "SWEEP_INTERVAL_SECONDS": "1"}
    stack = start_stack(beat=True, env=env)
    before, delivered = contact_writes(fake_kapso, stack, n=0, seconds_ago=400)  # before the outage
    assert delivered
    wait_until(lambda: len(sends(fake_kapso)) == 1, 60, what="the answer before the outage")
    # Time is compressed: the last message stored before the outage arrived before it began.
    Message.objects.filter(wamid=before).update(created_at=timezone.now() - timedelta(seconds=400))

    for name in ("web", "default", "agents", "beat"):  # Switchboard is down: every webhook fails
        stack.processes[name].kill()
    # A five-minute outage: messages from its start (older than the age limit by the time Switchboard
    # is back) and from its end. Kapso tries each one and gives up.
    old = [contact_writes(fake_kapso, stack, n=n, seconds_ago=300) for n in (1, 2)]
    fresh = [contact_writes(fake_kapso, stack, n=n, seconds_ago=5) for n in (3, 4, 5)]
    assert not any(delivered for _, delivered in old + fresh)  # none got through: only catch-up can help

    for name in ("web", "default", "agents", "beat"):
        stack.restart(name, wait=False)
    stack.wait_ready()
    wait_until(lambda: len(sends(fake_kapso)) == 4, 90, what="the missed fresh messages to be answered")
    settle(lambda: (len(fake_kapso.requests_to("POST", r"/messages$")), Message.objects.count()), quiet=5.0)

    inbound = {m.wamid: m for m in Message.objects.filter(direction="inbound")}
    assert sorted(inbound) == sorted([before] + [w for w, _ in old + fresh])  # each stored once
    for wamid, _ in old:
        assert inbound[wamid].needs_attention and inbound[wamid].run_id is None
        assert inbound[wamid].thread.needs_person_since is not None
    for wamid, _ in fresh:
        assert not inbound[wamid].needs_attention and inbound[wamid].run.status == "succeeded"
    replies = Message.objects.filter(direction="outbound", author="agent")
    assert sorted(r.thread.contact_phone for r in replies) == ["+15550100000", "+15550100003", "+15550100004",
                                                                "+15550100005"]  # once each, none twice
    assert {r.status for r in replies} == {"sent"}
    assert len(sends(fake_kapso)) == 4 and AgentRun.objects.count() == 4


def test_a_plan_of_100_requests_a_minute_sends_300_replies_without_a_failure(tenant, start_stack, fake_kapso):
    window = 6.0  # Kapso's minute, compressed
    fake_kapso.rate_limit, fake_kapso.rate_window = 100, window
    env = {"KAPSO_RATE_LIMIT_PER_MINUTE": "100", "KAPSO_RATE_LIMIT_WINDOW_SECONDS": str(window),
           "SWEEP_INTERVAL_SECONDS": "1"}
    _, _, connection = tenant
    start_stack(env=env)
    threads = [make_thread(connection, phone=f"+1555020{n:04d}") for n in range(300)]
    started = time.monotonic()

    for thread in threads:  # 300 replies due at once (queued, each drain enqueued on commit)
        services.outbound_queue(thread=thread, text=f"Your order {thread.contact_phone} shipped.", author="operator")
    wait_until(lambda: Message.objects.filter(status="sent").count() == 300, 120, what="300 replies sent")
    elapsed = time.monotonic() - started

    assert not Message.objects.filter(status="failed").exists()
    assert len(fake_kapso.sent) == 300
    # The limiter kept every worker under the plan: Kapso never had to answer 429.
    assert fake_kapso.rate_limited == 0, f"{fake_kapso.rate_limited} requests refused"
    print(f"300 replies at 100 per {window:g}s window: {elapsed:.1f}s ({elapsed / window:.1f} windows)")
