"""End-to-end benchmark: signed webhook in → agent turn (offline model) → send to Kapso, on one box.

    .venv/bin/python benchmarks/e2e.py [--rate 50] [--duration 60] [--contacts 500]
    .venv/bin/python benchmarks/e2e.py --duration 10          # smoke run

Processes, as in production (scripts/run) but on the benchmark's database (sb_bench_e2e), Redis DB
14 and ports 8210/8211: gunicorn (deploy/gunicorn.conf.py), the `default` worker (-P threads -c 8) and
the `agents` worker (-P threads -c 32), both with CELERY_DB_REUSE_MAX=1000; no beat, so no sweeper
can hide a lost message. Kapso is the tests' FakeKapso in its own process (benchmarks/kapso_standin.py),
which records when each send arrives; the product's limiter of Kapso's per-key rate is off unless
--kapso-rate-limit N (the stand-in has no limit). It answers at once unless --kapso-delay S (a real Kapso takes
~0.1-0.5 s per send); --default-pool prefork --default-concurrency 2 compares with a prefork pool.

Load: open loop, --rate messages/s for --duration s, round-robin over --contacts contacts (a fixed
shuffled order, so each contact writes every contacts/rate seconds) spread over --numbers WhatsApp
numbers of --orgs organizations (Switchboard paces sends to 20/s per number). About 10% of messages
ask for "status", which makes the offline model call the whatsapp.getStatus tool first.

Status webhooks: as Kapso does, every reply the stand-in accepts is followed by its `sent`, `delivered`
and `read` webhooks (posted in that order, as soon as the send is seen), so each message costs four
signed webhooks; --no-statuses posts only the inbound ones (the load of the benchmark's first version).
Every reply must end `read`.

Latency of a message = the stand-in's arrival time of the send answering it − the time its webhook
POST started. Checked exactly: every message stored and answered, no turn answered twice, no send
lost (every outbound row sent and seen by the stand-in, every send recorded in the database).
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import common, profiling  # noqa: E402
from benchmarks.common import fmt, percentile, print_table  # noqa: E402

API_KEY = "bench-kapso-key"
PATH = "/webhook/kapso/messages"


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rate", type=float, default=50.0, help="inbound messages per second")
    p.add_argument("--duration", type=float, default=60.0, help="seconds of load")
    p.add_argument("--contacts", type=int, default=500)
    p.add_argument("--numbers", type=int, default=10, help="WhatsApp numbers (connections)")
    p.add_argument("--orgs", type=int, default=5)
    p.add_argument("--status-share", type=float, default=0.1, help="share of messages that trigger a tool call")
    p.add_argument("--drain-timeout", type=float, default=90.0, help="seconds to wait for the last answers")
    p.add_argument("--web-port", type=int, default=8210)
    p.add_argument("--kapso-port", type=int, default=8211)
    p.add_argument("--db", default="sb_bench_e2e")
    p.add_argument("--kapso-delay", type=float, default=0.0,
                   help="seconds the stand-in takes to answer each send (a real Kapso takes ~0.1-0.5 s)")
    p.add_argument("--default-pool", default="threads", help="pool of the default worker (prefork, threads)")
    p.add_argument("--agents-concurrency", type=int, default=32)
    p.add_argument("--default-concurrency", type=int, default=8)
    p.add_argument("--kapso-rate-limit", type=int, default=0,
                   help="KAPSO_RATE_LIMIT_PER_MINUTE for the product's limiter (0 = off: the stand-in has no limit; "
                        "a real key allows 100-2,000 requests a minute, docs/performance.md)")
    p.add_argument("--worker-nice", type=int, default=10,
                   help="nice of both workers (deploy/start/worker-* use WORKER_NICE, default 10; 0 = as the web)")
    p.add_argument("--no-statuses", dest="statuses", action="store_false",
                   help="don't follow each reply with its sent/delivered/read webhooks")
    p.add_argument("--profile", action="store_true", help="py-spy the web and both workers during the load")
    p.add_argument("--no-record", action="store_true")
    return p.parse_args()


# --- data ------------------------------------------------------------------------------------------


def seed(args) -> list[dict]:
    """Orgs with an offline agent each, numbers spread over them; contacts spread over the numbers."""
    from django.db import connections

    from apps.agents.models import Agent
    from apps.orgs.models import Organization
    from apps.whatsapp.models import ConnectionStatus, WhatsAppConnection

    numbers = []
    orgs = [Organization.objects.create(name=f"Bench Org {i}", slug=f"bench-org-{i}") for i in range(args.orgs)]
    agents = [Agent.objects.create(org=o, name="Bench agent", slug="bench", model_provider="offline", model_name="demo",
                                   system_prompt="You help customers of {{organizationName}}.",
                                   tools=["whatsapp.send", "whatsapp.getConversation", "whatsapp.getStatus"])
              for o in orgs]
    for n in range(args.numbers):
        org, agent = orgs[n % len(orgs)], agents[n % len(orgs)]
        c = WhatsAppConnection(org=org, agent=agent, status=ConnectionStatus.CONNECTED,
                               kapso_customer_id=str(uuid.uuid4()), phone_number_id=f"20000000000{n:04d}",
                               display_phone_number=f"+1 555-020-{n:04d}")
        secret = f"bench-secret-{n}"
        c.webhook_secret = secret
        c.save()
        numbers.append({"phone_number_id": c.phone_number_id, "secret": secret})
    connections.close_all()
    return numbers


def plan_messages(args, numbers: list[dict], prefix: str, count: int, first_contact: int = 0) -> list[dict]:
    rng = random.Random(42 + first_contact)
    template = common.received_template()
    contacts = [{"phone": f"+3361{first_contact + i:07d}", "name": f"Contact {first_contact + i}",
                 "number": numbers[i % len(numbers)], "conversation": str(uuid.uuid4())}
                for i in range(args.contacts if not first_contact else count)]
    order = list(range(len(contacts)))
    rng.shuffle(order)
    plan = []
    for i in range(count):
        contact = contacts[order[i % len(order)]]
        words = " ".join(rng.choice(common.WORDS) for _ in range(rng.randint(6, 20)))
        text = f"{words} status?" if rng.random() < args.status_share else f"{words}."
        wamid = f"wamid.{prefix}.{i:06d}.{uuid.uuid4().hex[:12]}"
        body = common.compact(common.received_payload(
            template, phone_number_id=contact["number"]["phone_number_id"], phone=contact["phone"], wamid=wamid,
            text=text.capitalize(), contact_name=contact["name"], conversation_id=contact["conversation"]))
        plan.append({"i": i, "wamid": wamid, "body": body, "phone": contact["phone"],
                     "signature": common.sign(contact["number"]["secret"], body)})
    return plan


# --- load --------------------------------------------------------------------------------------------


def post(port: int, item: dict, event: str = "whatsapp.message.received") -> None:
    headers = {"Content-Type": "application/json", "X-Webhook-Event": event,
               "X-Webhook-Signature": item["signature"], "X-Idempotency-Key": str(uuid.uuid4()),
               "X-Webhook-Payload-Version": "v2"}
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
    item["t_post"] = time.time()
    try:
        conn.request("POST", PATH, item["body"], headers)
        response = conn.getresponse()
        response.read()
        item["status"] = response.status
    except OSError as error:
        item["status"] = f"error: {error.__class__.__name__}"
    finally:
        item["t_ack"] = time.time()
        conn.close()


def drive(port: int, plan: list[dict], rate: float) -> dict:
    """Open loop: message i is posted at start + i/rate whatever the server does."""
    lags = []
    with ThreadPoolExecutor(max_workers=64) as pool:
        start = time.monotonic() + 0.2
        for item in plan:
            target = start + item["i"] / rate
            delay = target - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            lags.append(time.monotonic() - target)
            pool.submit(post, port, item)
        dispatched = time.monotonic() - start
    return {"lag_p99_ms": round(1000 * percentile(lags, 99), 2), "lag_max_ms": round(1000 * max(lags), 2),
            "wall_s": round(dispatched, 3)}


def standin_sends(port: int, since: int = 0) -> list[dict]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/__bench/sends?since={since}",
                                     headers={"X-API-Key": API_KEY})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())["sends"]


class StatusFeeder(threading.Thread):
    """Kapso's status webhooks: each send the stand-in accepts is followed by its `sent`, `delivered`
    and `read` webhooks, posted in that order (one delivery after the other) by a pool of posters."""

    def __init__(self, web_port: int, kapso_port: int, numbers: list[dict], since: int):
        super().__init__(daemon=True)
        self.web_port, self.kapso_port, self.since = web_port, kapso_port, since
        self.secrets = {n["phone_number_id"]: n["secret"] for n in numbers}
        self.templates = common.status_templates()
        self.posts: list[dict] = []
        self.stopping = threading.Event()
        self.pool = ThreadPoolExecutor(max_workers=32)

    def run(self) -> None:
        while True:
            last_round = self.stopping.is_set()
            for send in standin_sends(self.kapso_port, self.since):
                self.since += 1
                if send["phone_number_id"] in self.secrets:
                    self.pool.submit(self.post_statuses, send)
            if last_round:
                return
            time.sleep(0.05)

    def post_statuses(self, send: dict) -> None:
        for status in common.STATUS_EVENTS:
            body = common.compact(common.status_payload(
                self.templates[status], phone_number_id=send["phone_number_id"], phone=str(send["to"]),
                wamid=send["wamid"], text=send["text"] or ""))
            item = {"body": body, "signature": common.sign(self.secrets[send["phone_number_id"]], body)}
            post(self.web_port, item, event=f"whatsapp.message.{status}")
            self.posts.append(item)

    def finish(self) -> dict:
        """Post the statuses of every send seen so far, then count the acknowledgements."""
        self.stopping.set()
        self.join()
        self.pool.shutdown(wait=True)
        acks = [1000 * (p["t_ack"] - p["t_post"]) for p in self.posts]
        statuses: dict = {}
        for p in self.posts:
            statuses[str(p.get("status"))] = statuses.get(str(p.get("status")), 0) + 1
        return {"posted": len(self.posts), "ack_statuses": statuses, "ack_ms": {
            "p50": percentile(acks, 50), "p99": percentile(acks, 99), "max": max(acks) if acks else None}}


def not_read(prefix: str) -> int:
    """Replies to the benchmark's messages whose `read` status has not been applied."""
    from apps.conversations.models import Message

    return (Message.objects.filter(direction="outbound", run__messages__wamid__startswith=f"wamid.{prefix}.")
            .exclude(status="read").distinct().count())


def wait_read(prefix: str, timeout: float) -> float:
    from django.db import connection

    start = time.monotonic()
    while time.monotonic() - start < timeout and not_read(prefix):
        time.sleep(0.5)
    connection.close()
    return time.monotonic() - start


def pending_work(prefix: str) -> int:
    """Benchmark messages whose turn has not finished, plus answers not sent yet."""
    from django.db import connection

    with connection.cursor() as c:
        c.execute(
            """SELECT
                 (SELECT count(*) FROM conversations_message m LEFT JOIN agents_agentrun r ON r.id = m.run_id
                   WHERE m.wamid LIKE %s AND (r.id IS NULL OR r.status IN ('pending', 'running')))
               + (SELECT count(*) FROM conversations_message WHERE direction = 'outbound'
                   AND status IN ('queued', 'sending'))""",
            [f"wamid.{prefix}.%"],
        )
        return c.fetchone()[0]


def wait_answered(prefix: str, expected: int, timeout: float) -> float:
    from django.db import connection

    from apps.conversations.models import Message

    start = time.monotonic()
    while time.monotonic() - start < timeout:
        stored = Message.objects.filter(wamid__startswith=f"wamid.{prefix}.").count()
        if stored >= expected and pending_work(prefix) == 0:
            break
        time.sleep(0.5)
    connection.close()
    return time.monotonic() - start


# --- analysis ----------------------------------------------------------------------------------------


def analyse(prefix: str, plan: list[dict], sends: list[dict]) -> dict:
    from django.db import connection

    from apps.agents.models import AgentRun
    from apps.conversations.models import Message

    inbound = {m["wamid"]: m for m in Message.objects.filter(wamid__startswith=f"wamid.{prefix}.").values(
        "wamid", "run_id", "thread_id", "created_at")}
    run_ids = {m["run_id"] for m in inbound.values() if m["run_id"]}
    runs = {r["id"]: r for r in AgentRun.objects.filter(id__in=run_ids).values(
        "id", "status", "attempts", "started_at", "finished_at", "created_at")}
    outbound = list(Message.objects.filter(direction="outbound", run_id__in=run_ids).values(
        "id", "run_id", "wamid", "status", "send_attempts", "thread_id"))
    all_outbound_wamids = set(Message.objects.filter(direction="outbound", wamid__isnull=False)
                              .values_list("wamid", flat=True))
    connection.close()

    send_by_wamid: dict[str, list[dict]] = {}
    for s in sends:
        send_by_wamid.setdefault(s["wamid"], []).append(s)
    out_by_run: dict = {}
    for o in outbound:
        out_by_run.setdefault(o["run_id"], []).append(o)

    statuses: dict = {}
    for item in plan:
        statuses[str(item.get("status"))] = statuses.get(str(item.get("status")), 0) + 1
    latencies, ack, to_start, turn, to_send = [], [], [], [], []
    unanswered, not_stored = [], []
    for item in plan:
        message = inbound.get(item["wamid"])
        if message is None:
            not_stored.append(item["wamid"])
            continue
        run = runs.get(message["run_id"])
        answer_times = sorted(s["at"] for o in out_by_run.get(message["run_id"], []) if o["wamid"]
                              for s in send_by_wamid.get(o["wamid"], []))
        if run is None or not answer_times:
            unanswered.append(item["wamid"])
            continue
        latencies.append(1000 * (answer_times[0] - item["t_post"]))
        ack.append(1000 * (item["t_ack"] - item["t_post"]))
        if run["started_at"] and run["finished_at"]:
            to_start.append(1000 * (run["started_at"].timestamp() - item["t_post"]))
            turn.append(1000 * (run["finished_at"] - run["started_at"]).total_seconds())
            to_send.append(1000 * (answer_times[0] - run["finished_at"].timestamp()))

    runs_answered_twice = sum(
        1 for run_id in run_ids
        if sum(len(send_by_wamid.get(o["wamid"], [])) for o in out_by_run.get(run_id, []) if o["wamid"]) > 1
    )
    bench_phones = {item["phone"].lstrip("+") for item in plan}
    orphan_sends = [s for s in sends
                    if s["wamid"] not in all_outbound_wamids and str(s["to"]).lstrip("+") in bench_phones]
    unsent = [o for o in outbound if o["status"] not in ("sent", "delivered", "read") or not o["wamid"]]
    unseen = [o for o in outbound if o["wamid"] and o["wamid"] not in send_by_wamid]
    per_run = {}
    for run_id in run_ids:
        n = sum(1 for m in inbound.values() if m["run_id"] == run_id)
        per_run[n] = per_run.get(n, 0) + 1
    run_statuses: dict = {}
    for r in runs.values():
        run_statuses[r["status"]] = run_statuses.get(r["status"], 0) + 1
    summary = lambda xs: {"p50": percentile(xs, 50), "p90": percentile(xs, 90), "p99": percentile(xs, 99),  # noqa: E731
                          "max": max(xs) if xs else None, "n": len(xs)}
    return {
        "posted": len(plan),
        "ack_statuses": statuses,
        "stored": len(inbound),
        "not_stored": len(not_stored),
        "answered": len(latencies),
        "unanswered": len(unanswered),
        "runs": len(run_ids),
        "run_statuses": run_statuses,
        "messages_per_run": per_run,
        "runs_answered_twice": runs_answered_twice,
        "orphan_sends": len(orphan_sends),
        "outbound_rows": len(outbound),
        "outbound_not_sent": len(unsent),
        "outbound_not_seen_by_kapso": len(unseen),
        "retried_sends": sum(1 for o in outbound if o["send_attempts"] > 1),
        "latency_ms": summary(latencies),
        "ack_ms": summary(ack),
        "post_to_turn_start_ms": summary(to_start),
        "turn_ms": summary(turn),
        "turn_end_to_send_ms": summary(to_send),
        "examples": {"unanswered": unanswered[:5], "not_stored": not_stored[:5]},
    }


# --- main --------------------------------------------------------------------------------------------


def main() -> None:
    args = parse_args()
    work = Path(tempfile.mkdtemp(prefix="sb_bench_e2e_"))
    print(f"database {args.db}, Redis DB {common.REDIS_DB}, web :{args.web_port}, Kapso stand-in "
          f":{args.kapso_port}, scratch {work}")
    common.db_recreate(args.db)
    common.migrate(args.db)
    kapso_url = f"http://127.0.0.1:{args.kapso_port}"
    extra = {"KAPSO_API_BASE_URL": kapso_url, "KAPSO_API_KEY": API_KEY, "CELERY_DB_REUSE_MAX": "1000",
             # Kapso's per-key limit caps every Switchboard alike (1,000 a minute is 15 sends/s): off by
             # default here, so that the benchmark measures Switchboard's own cost per message.
             "KAPSO_RATE_LIMIT_PER_MINUTE": str(args.kapso_rate_limit)}
    common.django_setup(args.db, **extra)
    numbers = seed(args)
    common.redis_flush()
    env = common.bench_env(args.db, **extra)

    count = int(args.rate * args.duration)
    prefix = "b" + uuid.uuid4().hex[:8]
    plan = plan_messages(args, numbers, prefix, count)
    warm = plan_messages(args, numbers, "w" + prefix[1:], max(10, args.numbers * 2), first_contact=9_000_000)

    procs: list[common.Proc] = []
    spies = []
    try:
        standin = common.Proc("kapso", [common.PYTHON, "-m", "benchmarks.kapso_standin", "--port",
                                        str(args.kapso_port), "--api-key", API_KEY,
                                        "--send-delay", str(args.kapso_delay)], env, work / "kapso.log")
        procs.append(standin)
        web = common.start_gunicorn(args.web_port, env, work / "gunicorn.log")
        procs.append(web)
        default = common.start_celery("bench-default", "default", env, work / "default.log",
                                      ["-P", args.default_pool, "-c", str(args.default_concurrency)],
                                      nice=args.worker_nice)
        procs.append(default)
        agents = common.start_celery("bench-agents", "agents", env, work / "agents.log",
                                     ["-P", "threads", "-c", str(args.agents_concurrency)], nice=args.worker_nice)
        procs.append(agents)
        common.wait_for(lambda: standin_sends(args.kapso_port) is not None, 30, "the Kapso stand-in")
        common.wait_for(lambda: common.http_ok(f"http://127.0.0.1:{args.web_port}/readyz"), 60, "gunicorn")
        for worker in (default, agents):
            common.wait_celery(worker, f"{worker.name}@%h", env)
        print("web, workers and stand-in are up; warming up")

        drive(args.web_port, warm, rate=20)
        warm_wait = wait_answered("w" + prefix[1:], len(warm), 60)
        print(f"warm-up: {len(warm)} messages answered in {warm_wait:.1f} s")
        sends_before = len(standin_sends(args.kapso_port))

        trees = {"web": web.pid, "default_worker": default.pid, "agents_worker": agents.pid, "kapso": standin.pid}
        meter = common.CpuMeter(trees, db=args.db, redis_pid=common.redis_server_pid())
        rss_start = common.tree_rss_mb(trees)
        if args.profile:
            for name in ("web", "default_worker", "agents_worker"):
                out = work / f"pyspy-{name}.txt"
                spies.append((name, out, profiling.record(trees[name], int(args.duration), out)))
        print(f"load: {count} messages at {args.rate:g}/s over {args.contacts} contacts, {args.numbers} numbers")
        feeder = StatusFeeder(args.web_port, args.kapso_port, numbers, since=sends_before)
        if args.statuses:
            feeder.start()
        with meter:
            load = drive(args.web_port, plan, args.rate)
            drain = wait_answered(prefix, count, args.drain_timeout)
            if args.statuses:
                status_posts = feeder.finish()
                drain += wait_read(prefix, args.drain_timeout)
        rss_end = common.tree_rss_mb(trees)
        sends = standin_sends(args.kapso_port)
        for _, _, spy in spies:
            spy.wait(60)
    finally:
        for proc in reversed(procs):
            proc.stop()

    cpu = meter.report()
    result = analyse(prefix, plan, sends[sends_before:] if sends_before <= len(sends) else sends)
    result["status_webhooks"] = status_posts if args.statuses else None
    result["replies_not_read"] = not_read(prefix) if args.statuses else None
    first_post = min(i["t_post"] for i in plan if "t_post" in i)
    last_send = max((s["at"] for s in sends[sends_before:]), default=first_post)
    result.update(
        load=load, drain_after_load_s=round(drain, 2),
        offered_rate=args.rate, achieved_post_rate=round((count - 1) / load["wall_s"], 2) if load["wall_s"] else None,
        answers_per_s=round(result["answered"] / max(1e-9, last_send - first_post), 2),
        rss_mb={"start": rss_start, "end": rss_end},
        cpu=cpu, cpu_ms_per_message={k: round(1000 * v / count, 3) for k, v in cpu["cpu_s"].items()},
    )
    profiles = {}
    for name, out, _ in spies:
        if out.exists():
            profiles[name] = profiling.summarise(out)
            print(f"\n== {name}")
            profiling.print_summary(profiles[name], top=20)
    report(args, result, profiles, work)


def report(args, r: dict, profiles: dict, work: Path) -> None:
    lat = r["latency_ms"]
    statuses = r["status_webhooks"]
    print()
    print_table(["figure", "value"], [
        ["messages posted (offered rate)", f"{r['posted']} ({args.rate:g}/s for {args.duration:g} s)"],
        ["achieved post rate", f"{r['achieved_post_rate']}/s (generator lag p99 {r['load']['lag_p99_ms']} ms)"],
        ["acks", json.dumps(r["ack_statuses"])],
        ["stored / answered / unanswered", f"{r['stored']} / {r['answered']} / {r['unanswered']}"],
        ["turns (runs), by status", f"{r['runs']} {json.dumps(r['run_statuses'])}"],
        ["turns answered twice", r["runs_answered_twice"]],
        ["sends not in the database (orphans)", r["orphan_sends"]],
        ["answers not sent / not seen by Kapso", f"{r['outbound_not_sent']} / {r['outbound_not_seen_by_kapso']}"],
        ["webhook→send p50 / p90 / p99 / max ms",
         f"{fmt(lat['p50'])} / {fmt(lat['p90'])} / {fmt(lat['p99'])} / {fmt(lat['max'])}"],
        ["  ack p50 / p99 ms", f"{fmt(r['ack_ms']['p50'])} / {fmt(r['ack_ms']['p99'])}"],
        ["status webhooks posted, acks", "off" if not statuses else
         f"{statuses['posted']} {json.dumps(statuses['ack_statuses'])}, p50 / p99 "
         f"{fmt(statuses['ack_ms']['p50'])} / {fmt(statuses['ack_ms']['p99'])} ms"],
        ["replies not ended read", "-" if not statuses else r["replies_not_read"]],
        ["  post→turn start p50 / p99 ms",
         f"{fmt(r['post_to_turn_start_ms']['p50'])} / {fmt(r['post_to_turn_start_ms']['p99'])}"],
        ["  turn p50 / p99 ms", f"{fmt(r['turn_ms']['p50'])} / {fmt(r['turn_ms']['p99'])}"],
        ["  turn end→send p50 / p99 ms",
         f"{fmt(r['turn_end_to_send_ms']['p50'])} / {fmt(r['turn_end_to_send_ms']['p99'])}"],
        ["answers per second", r["answers_per_s"]],
        ["drain after load", f"{r['drain_after_load_s']} s"],
        ["CPU ms per message", json.dumps(r["cpu_ms_per_message"])],
        *[[f"RSS MB {name}, start → end of load", " ".join(
            f"{a:g}→{b:g}" for a, b in zip(r["rss_mb"]["start"][name], r["rss_mb"]["end"][name], strict=False))]
          for name in r["rss_mb"]["start"]],
        ["new PostgreSQL connections", f"{r['cpu']['pg_sessions_opened']} "
                                       f"({r['cpu']['pg_sessions_opened'] / r['posted']:.2f} per message)"],
        ["machine busy / foreign CPU", f"{r['cpu']['machine_busy_pct']}% / {r['cpu']['foreign_cpu_pct']}%"],
    ])
    exact = (r["stored"] == r["posted"] and r["unanswered"] == 0 and r["runs_answered_twice"] == 0
             and r["orphan_sends"] == 0 and r["outbound_not_sent"] == 0 and r["outbound_not_seen_by_kapso"] == 0
             and r["ack_statuses"] == {"200": r["posted"]}
             and (not statuses or (statuses["ack_statuses"] == {"200": 3 * r["outbound_rows"]}
                                   and r["replies_not_read"] == 0)))
    targets = {"p50_lt_150ms": lat["p50"] is not None and lat["p50"] < 150,
               "p99_lt_1s": lat["p99"] is not None and lat["p99"] < 1000, "counts_exact": exact}
    print("targets: " + ", ".join(f"{k} {'PASS' if v else 'FAIL'}" for k, v in targets.items()))
    if (r["cpu"]["foreign_cpu_pct"] or 0) > 10:
        print(f"NOISE: other processes used {r['cpu']['foreign_cpu_pct']}% of the machine: figures are noisy")
    print(f"logs: {work}")
    if not args.no_record:
        common.append_result("e2e", {**r, "targets": targets, "profiles": profiles},
                             settings={k: v for k, v in vars(args).items() if k not in ("no_record",)})


if __name__ == "__main__":
    main()
