"""The fault suite, with real processes. After every fault, once the system has settled: every
inbound message is stored once, every turn that should answer is answered once, nothing is sent
twice (`assert_answered_once`)."""

import signal
import socket
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import psycopg
import pytest
from django.conf import settings
from django.db import connection as db

from apps.agents.models import AgentRun
from apps.conversations.models import Message
from apps.webhooks.models import WebhookEvent
from tests.e2e.conftest import (
    FAST_RECOVERY,
    EchoModel,
    Process,
    assert_answered_once,
    free_port,
    inbound_payload,
    sends,
    settle,
    status_payload,
    use_model,
    wait_until,
)
from tests.factories import compact
from tests.fakes.kapso_server import fixture

pytestmark = pytest.mark.e2e


def outbound_settled() -> tuple:
    """A snapshot that stops changing once nothing is queued, sending, or running any more."""
    return (
        tuple(Message.objects.order_by("id").values_list("status", "send_attempts")),
        tuple(AgentRun.objects.order_by("id").values_list("status", "attempts")),
    )


# --- killed workers --------------------------------------------------------------------------------


def test_an_agent_worker_killed_mid_turn_is_replaced_and_the_turn_answers_once(tenant, start_stack, fake_kapso, model):
    _, agent, _ = tenant
    use_model(agent)
    model.reply_tool_call("whatsapp.getConversation", {"limit": 5}, delay=10)  # killed while it waits
    model.reply_tool_call("whatsapp.getConversation", {"limit": 5})
    model.reply_text("Here is your answer.")
    stack = start_stack(model=model, beat=True, env=FAST_RECOVERY)
    payload = inbound_payload(text="Where is my order?")

    assert stack.post(payload).status_code == 200
    wait_until(lambda: model.requests, 20, what="the model call")
    stack.processes["agents"].kill(signal.SIGKILL)
    stack.restart("agents")
    wait_until(lambda: fake_kapso.sent, 60, what="the reply")
    settle(outbound_settled)

    assert_answered_once(fake_kapso, [payload["message"]["id"]])
    assert [s["text"]["body"] for s in fake_kapso.sent] == ["Here is your answer."]
    [run] = AgentRun.objects.all()
    assert (run.status, run.attempts) == ("succeeded", 2)
    assert run.tool_calls.count() == 1


def test_a_turn_killed_while_more_messages_waited_answers_them_all_in_one_reply(tenant, start_stack, fake_kapso):
    _, agent, _ = tenant
    with EchoModel() as model:
        model.delays.append(10)  # the first turn is killed while the model thinks
        use_model(agent, tools=[])
        stack = start_stack(model=model, beat=True, env=FAST_RECOVERY)
        first, second = inbound_payload(text="first"), inbound_payload(text="second")

        assert stack.post(first).status_code == 200
        wait_until(lambda: model.requests, 20, what="the first turn's model call")
        assert stack.post(second).status_code == 200  # waits for the next turn
        stack.processes["agents"].kill(signal.SIGKILL)
        stack.restart("agents")
        wait_until(lambda: fake_kapso.sent, 60, what="the reply")
        settle(outbound_settled)

    assert_answered_once(fake_kapso, [first["message"]["id"], second["message"]["id"]])
    assert [s["text"]["body"] for s in fake_kapso.sent] == ["Re: first | second"]
    [run] = AgentRun.objects.all()  # the waiting turn was folded into the one handed out again
    assert (run.status, run.attempts) == ("succeeded", 2)


@pytest.mark.parametrize("kapso_accepted", [True, False], ids=["kapso-accepted-it", "kapso-did-not"])
def test_the_worker_sending_a_reply_killed_mid_send_is_replaced_and_the_reply_goes_out_once(
    tenant, start_stack, fake_kapso, kapso_accepted
):
    fake_kapso.delay_next_send(2)  # the worker is killed while Kapso is still answering
    if not kapso_accepted:
        fake_kapso.fail_next_send(503, {"error": "upstream unavailable"})
    stack = start_stack(beat=True, env=FAST_RECOVERY)
    payload = inbound_payload(text="Killed mid-send")

    assert stack.post(payload).status_code == 200
    wait_until(lambda: sends(fake_kapso), 20, what="the send to reach Kapso")
    # A turn sends its own reply once recorded (conversations.tasks.outbox_drains_inline): the sender
    # is the `agents` worker; the sweeper and the `default` worker take over what it left in flight.
    stack.processes["agents"].kill(signal.SIGKILL)
    stack.restart("agents")
    wait_until(lambda: Message.objects.filter(direction="outbound", status="sent").exists(), 60, what="sent")
    settle(outbound_settled)

    assert_answered_once(fake_kapso, [payload["message"]["id"]])
    assert len(sends(fake_kapso)) == (1 if kapso_accepted else 2)


# --- the broker goes away ------------------------------------------------------------------------


@pytest.mark.slow
def test_webhooks_are_acknowledged_through_a_broker_outage_and_answered_once_it_is_back(
    tenant, start_stack, fake_kapso, tmp_path
):
    port = free_port()
    broker = Process("redis", ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                               "--appendonly", "no", "--daemonize", "no"], {}, tmp_path / "redis.log",
                     "Ready to accept connections").start()
    broker.wait_ready()
    try:
        stack = start_stack(redis_url=f"redis://127.0.0.1:{port}/0", beat=True, env=FAST_RECOVERY)
        # A worker that loses the broker while a task's ack is pending can die inside kombu (restoring
        # unacked messages without a connection: "'NoneType' object has no attribute 'hostname'").
        # Production restarts it (deploy/systemd Restart=always); so does this stack.
        stack.supervise()
        wamids = []
        first = inbound_payload(text="before the outage")
        assert stack.post(first).status_code == 200
        wamids.append(first["message"]["id"])
        wait_until(lambda: fake_kapso.sent, 20)

        broker.kill(signal.SIGKILL)
        outage_ends = time.monotonic() + 30
        n, ack_seconds = 0, []
        while time.monotonic() < outage_ends:
            n += 1
            payload = inbound_payload(phone=f"+1555010{n % 4:04d}", text=f"during the outage {n}")
            key = str(uuid.uuid4())
            posted = time.monotonic()
            response = stack.post(payload, key=key, timeout=15)
            ack_seconds.append(time.monotonic() - posted)
            assert response.status_code == 200, response.text
            assert WebhookEvent.objects.filter(idempotency_key=key).exists()
            wamids.append(payload["message"]["id"])
            time.sleep(0.5)
        print(f"\n{n} deliveries acknowledged during the outage, slowest in {max(ack_seconds) * 1000:.0f} ms")
        broker.start()
        broker.wait_ready()

        wait_until(lambda: len(fake_kapso.sent) >= 5, 120, interval=0.2, what="answers after the outage")
        settle(outbound_settled, quiet=5, timeout=120)
        assert_answered_once(fake_kapso, wamids)
        print(f"processes restarted after crashing: {stack.crashes or 'none'}")
    finally:
        broker.kill(signal.SIGKILL)


# --- database connections are cut -----------------------------------------------------------------


def test_database_connections_cut_during_a_burst_never_acknowledge_an_unstored_delivery(
    tenant, start_stack, fake_kapso
):
    stack = start_stack(beat=True, env=FAST_RECOVERY, web_workers=3)
    deliveries = [(str(uuid.uuid4()), inbound_payload(phone=f"+1555020{n % 10:04d}", text=f"burst {n}"))
                  for n in range(80)]
    name = settings.DATABASES["default"]["NAME"]
    stop = threading.Event()
    cuts = []

    def cut():
        with psycopg.connect(host="127.0.0.1", user="postgres", dbname="postgres", autocommit=True) as killer:
            while not stop.is_set():
                killed = killer.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                                        "WHERE datname = %s AND pid <> pg_backend_pid()", [name]).fetchone()[0]
                cuts.append(killed)
                time.sleep(0.05)

    def post(delivery):
        key, payload = delivery
        try:
            return key, stack.post(payload, key=key).status_code
        except httpx.HTTPError as error:
            return key, repr(error)

    cutter = threading.Thread(target=cut)
    cutter.start()
    try:
        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(post, deliveries))
    finally:
        stop.set()
        cutter.join()
    db.close()  # ours was cut too

    acknowledged = {key for key, status in results if status == 200}
    refused = {key for key, status in results if status != 200}
    print(f"\n{sum(cuts)} connections cut; {len(refused)} of {len(results)} deliveries refused")
    assert sum(cuts) > 0 and refused, "the cuts never hit a request; the test proves nothing"
    assert {status for _, status in results} <= {200, 500}, results
    stored = set(WebhookEvent.objects.values_list("idempotency_key", flat=True))
    assert acknowledged <= stored, "a delivery was acknowledged but not stored"
    assert not refused & stored, "a delivery was refused (Kapso retries it) although it was stored"

    for key, payload in deliveries:  # Kapso retries what was refused
        if key in refused:
            assert stack.post(payload, key=key).status_code == 200
    wait_until(lambda: len(fake_kapso.sent) >= 10, 60, what="every contact answered")
    settle(outbound_settled, quiet=4, timeout=120)

    assert WebhookEvent.objects.count() == len(deliveries)
    assert_answered_once(fake_kapso, [payload["message"]["id"] for _, payload in deliveries])


def test_workers_reconnect_after_their_idle_database_connections_are_cut(tenant, start_stack, fake_kapso):
    stack = start_stack(beat=True, env=FAST_RECOVERY)
    wamids = []
    for n in range(4):  # every worker process and thread now holds a connection
        payload = inbound_payload(phone=f"+1555025{n:04d}", text=f"before the cut {n}")
        wamids.append(payload["message"]["id"])
        assert stack.post(payload).status_code == 200
    wait_until(lambda: len(fake_kapso.sent) == 4, 30)
    settle(outbound_settled, quiet=1.5)  # sweeps run on the default worker meanwhile

    with psycopg.connect(host="127.0.0.1", user="postgres", dbname="postgres", autocommit=True) as killer:
        killer.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s "
                       "AND pid <> pg_backend_pid()", [settings.DATABASES["default"]["NAME"]])
    db.close()
    for n in range(4):
        payload = inbound_payload(phone=f"+1555026{n:04d}", text=f"after the cut {n}")
        wamids.append(payload["message"]["id"])
        assert stack.post(payload).status_code == 200
    wait_until(lambda: len(fake_kapso.sent) == 8, 30, what="answers after the cut")
    settle(outbound_settled, quiet=2)

    assert_answered_once(fake_kapso, wamids)


# --- Kapso's send endpoint fails ---------------------------------------------------------------------

SERVER_ERROR = {"error": {"message": "Internal error", "type": "OAuthException", "code": 131000}}
SEND_FAULTS = {
    # name: (script, requests expected, final status, error code when failed); each request costs the
    # message one attempt, except a 429 (Kapso's per-key budget: the message was not looked at)
    "500 twice": (lambda k: k.fail_next_send(500, SERVER_ERROR, times=2), 3, "sent", ""),
    "429 with Retry-After": (lambda k: k.fail_next_send(429, fixture("api__rate_limited_429"), {"Retry-After": "1"}),
                             2, "sent", ""),
    "409 in flight": (lambda k: k.fail_next_send(409, fixture("api__send_error_409_in_flight")), 2, "sent", ""),
    "130429 throttled": (lambda k: k.fail_next_send(400, fixture("api__send_error_130429")), 2, "sent", ""),
    "timeout, not accepted": (lambda k: (k.delay_next_send(1.6), k.fail_next_send(504, {"error": "gateway"})),
                              2, "sent", ""),
    "131047 outside the window": (lambda k: k.fail_next_send(422, fixture("api__send_error_131047")), 1, "failed",
                                  "131047"),
    "400 bad parameter": (lambda k: k.fail_next_send(400, {"error": {"message": "Invalid parameter", "code": 100}}),
                          1, "failed", "100"),
    "402 no credits": (lambda k: k.fail_next_send(402, {"error": "Your Kapso balance doesn't cover Meta's fee.",
                                                        "code": "insufficient_credits"}), 1, "failed",
                       "insufficient_credits"),
    "500 every time": (lambda k: k.fail_next_send(500, SERVER_ERROR, times=6), 6, "failed", "131000"),
}


def test_kapso_send_failures_are_retried_with_bounded_backoff_or_failed_for_good(tenant, start_stack, fake_kapso):
    stack = start_stack(beat=True, env={**FAST_RECOVERY, "KAPSO_TIMEOUT_SECONDS": "1"})
    wamids = []
    for n, (case, (script, expected_requests, status, code)) in enumerate(SEND_FAULTS.items()):
        phone = f"+1555030{n:04d}"
        script(fake_kapso)
        payload = inbound_payload(phone=phone, text=case)
        wamids.append(payload["message"]["id"])
        assert stack.post(payload).status_code == 200
        wait_until(lambda phone=phone: Message.objects.filter(thread__contact_phone=phone, direction="outbound",
                                                              status__in=["sent", "failed"]).exists(),
                   60, what=case)
        settle(outbound_settled, quiet=1.5)

        [reply] = Message.objects.filter(thread__contact_phone=phone, direction="outbound")
        assert (reply.status, reply.error_code) == (status, code), (case, reply.error_text)
        assert len(sends(fake_kapso, phone)) == expected_requests, case
        assert reply.send_attempts == expected_requests - (case == "429 with Retry-After"), case
        if status == "failed":
            assert reply.error_text, case
    assert not fake_kapso.send_failures and not fake_kapso.send_delays
    sent = [s for s in fake_kapso.sent]
    assert len(sent) == len({(s["to"], s["text"]["body"]) for s in sent}), "a reply was sent twice"


def test_a_send_that_times_out_after_kapso_accepted_it_is_not_sent_again(tenant, start_stack, fake_kapso):
    stack = start_stack(beat=True, env={**FAST_RECOVERY, "KAPSO_TIMEOUT_SECONDS": "1"})
    fake_kapso.delay_next_send(1.6)  # Kapso takes it, but answers after our timeout
    payload = inbound_payload(text="slow Kapso")

    assert stack.post(payload).status_code == 200
    wait_until(lambda: Message.objects.filter(direction="outbound", status="sent").exists(), 60, what="sent")
    settle(outbound_settled, quiet=3)

    assert len(fake_kapso.sent) == 1
    assert_answered_once(fake_kapso, [payload["message"]["id"]])


# --- the model fails -------------------------------------------------------------------------------------


def test_model_timeouts_and_errors_are_retried_then_the_fallback_text_is_sent_once(
    tenant, start_stack, fake_kapso, model
):
    _, agent, _ = tenant
    use_model(agent, fallback_text="Sorry, a person will answer you soon.")
    stack = start_stack(model=model, env={"MODEL_TIMEOUT_SECONDS": "1", "MODEL_MAX_ATTEMPTS": "3"})
    cases = [
        ("timeout, 500, 500", lambda: (model.reply_text("too late", delay=1.6), model.reply_error(500),
                                       model.reply_error(500)), 3, "Sorry, a person will answer you soon.", "failed"),
        ("500, then an answer", lambda: (model.reply_error(500), model.reply_text("Second try worked.")),
         2, "Second try worked.", "succeeded"),
        ("timeout, then an answer", lambda: (model.reply_text("too late", delay=1.6), model.reply_text("On time.")),
         2, "On time.", "succeeded"),
    ]
    wamids = []
    for n, (case, script, calls, text, run_status) in enumerate(cases):
        phone, before = f"+1555040{n:04d}", len(model.requests)
        script()
        payload = inbound_payload(phone=phone, text=case)
        wamids.append(payload["message"]["id"])
        assert stack.post(payload).status_code == 200
        wait_until(lambda phone=phone: sends(fake_kapso, phone), 30, what=case)
        settle(outbound_settled, quiet=1)

        assert [s["body"]["text"]["body"] for s in sends(fake_kapso, phone)] == [text], case
        assert len(model.requests) - before == calls, case
        [run] = AgentRun.objects.filter(thread__contact_phone=phone)
        assert run.status == run_status, case
    assert model.pending == 0
    assert_answered_once(fake_kapso, wamids)


# --- redeliveries, statuses, bursts -------------------------------------------------------------------------


def test_a_redelivery_storm_stores_one_message_and_answers_once(tenant, start_stack, fake_kapso):
    stack = start_stack()
    payload = inbound_payload(text="storm")
    raw = compact(payload)

    with ThreadPoolExecutor(50) as pool:
        same_key = list(pool.map(lambda _: stack.post(raw=raw, key="storm-key"), range(50)))
        new_keys = list(pool.map(lambda _: stack.post(raw=raw), range(50)))  # replays under fresh keys
    wait_until(lambda: fake_kapso.sent, 20)
    settle(outbound_settled)

    assert {r.status_code for r in same_key + new_keys} == {200}
    assert sorted(r.json()["status"] for r in same_key).count("processed") == 1
    assert WebhookEvent.objects.count() == 51
    assert_answered_once(fake_kapso, [payload["message"]["id"]])
    assert AgentRun.objects.count() == 1


def test_statuses_out_of_order_end_read(tenant, start_stack, fake_kapso):
    stack = start_stack()
    assert stack.post(inbound_payload(text="first")).status_code == 200
    wait_until(lambda: Message.objects.filter(direction="outbound", status="sent").exists(), 20)
    [reply] = Message.objects.filter(direction="outbound")

    for event in ("whatsapp.message.read", "whatsapp.message.delivered", "whatsapp.message.sent"):
        assert stack.post(status_payload(event, wamid=reply.wamid), event=event).status_code == 200

    reply.refresh_from_db()
    assert reply.status == "read"

    # Statuses that overtake the send's own answer: Kapso reports `read` and `delivered` before it
    # answers the POST that created the message.
    def report_early(wamid, body):
        for event in ("whatsapp.message.read", "whatsapp.message.delivered"):
            stack.post(status_payload(event, wamid=wamid, phone="+" + body["to"]), event=event)

    fake_kapso.on_send = report_early
    assert stack.post(inbound_payload(text="second")).status_code == 200
    wait_until(lambda: Message.objects.filter(direction="outbound", status="read").count() == 2, 30,
               what="the second reply to end read")
    settle(outbound_settled, quiet=3)
    assert set(Message.objects.filter(direction="outbound").values_list("status", flat=True)) == {"read"}


def test_a_burst_from_one_contact_gets_non_overlapping_turns_that_cover_every_message_in_order(
    tenant, start_stack, fake_kapso
):
    _, agent, connection = tenant
    with EchoModel() as model:
        use_model(agent, tools=[])
        stack = start_stack(model=model, agents_concurrency=4)
        texts = [f"part {n}" for n in range(20)]
        wamids = []
        for text in texts:  # 20 messages within 2 s
            payload = inbound_payload(text=text)
            wamids.append(payload["message"]["id"])
            assert stack.post(payload).status_code == 200
            time.sleep(0.1)
        wait_until(lambda: Message.objects.filter(direction="inbound", run__status="succeeded").count() == 20, 60,
                   what="every message covered by a finished turn")
        settle(outbound_settled, quiet=2)

    runs = list(AgentRun.objects.order_by("started_at"))
    for earlier, later in zip(runs, runs[1:], strict=False):
        assert earlier.finished_at <= later.started_at, "two turns of one thread overlapped"
    assert_answered_once(fake_kapso, wamids)
    replies = Message.objects.filter(direction="outbound").order_by("created_at", "id")
    assert [s["wamid"] for s in fake_kapso.sent] == [m.wamid for m in replies], "replies went out of order"
    answered = [part for s in fake_kapso.sent for part in s["text"]["body"].removeprefix("Re: ").split(" | ")]
    assert sorted(answered) == sorted(texts), "every message is answered by exactly one turn"
    assert len(runs) < 20  # messages that arrived during a turn were answered together


def _raw_http(stack, head: bytes, body: bytes = b"") -> bytes:
    """Send bytes over a socket and read the whole answer; gunicorn closes after a refusal."""
    with socket.create_connection(("127.0.0.1", stack.port), timeout=10) as sock:
        sock.sendall(head + body)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


def test_hostile_requests_over_http_are_refused_early_and_store_nothing(tenant, start_stack, fake_kapso):
    stack = start_stack()
    declared = _raw_http(stack, b"POST /webhook/kapso/messages HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                b"Content-Type: application/json\r\nContent-Length: 52428800\r\n\r\n")
    # 50 MB announced and none sent: the answer comes without the body being waited for.
    assert declared.startswith(b"HTTP/1.1 413"), declared[:200]

    chunk = b"x" * 65536
    chunked = _raw_http(stack, b"POST /webhook/kapso/project HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                               b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
                               b"Connection: close\r\n\r\n",
                        (b"%x\r\n" % len(chunk) + chunk + b"\r\n") * 32 + b"0\r\n\r\n")  # 2 MB, no length
    assert chunked.split(b" ", 2)[1] in (b"400", b"413"), chunked[:200]

    huge = stack.post(raw=b'{"pad":"' + b"x" * (settings.WEBHOOK_MAX_BODY_BYTES + 1) + b'"}')
    assert huge.status_code == 413
    assert stack.post(inbound_payload(), secret="not-the-secret").status_code == 401
    assert stack.http.get("/healthz").status_code == 200  # and the web is still serving
    assert not WebhookEvent.objects.exists() and not Message.objects.exists()
