"""Dashboard benchmark: server time and query counts of the inbox and a long thread on a big org.

    .venv/bin/python benchmarks/dashboard.py [--repeat 50] [--reseed]
    .venv/bin/python benchmarks/dashboard.py --case inbox=/o/{org}/inbox/ --case 'long=/o/{org}/threads/{long_thread}/'

Seeds (once; reused while the sizes match, --reseed to redo) a dedicated database sb_bench_dashboard
with 10,000 threads and 1,000,000 messages by INSERT … SELECT generate_series (indexes dropped
during the load and rebuilt after), with the agent turns (one per answered message) and a few tool
calls they imply: one org of 9,000 threads on two numbers (the one measured), another of 1,000 (so
every query must filter by tenant), one thread of 20,000 messages, 5% in human handoff, 10% waiting
for a reply. Columns the seeder does not know get their model default, so new fields do not break it.

Then it requests each page in this process through Django's full handler (middleware, session,
templates; settings benchmarks.settings: DEBUG off, persistent connection) as a signed-in
owner, and reports server time p50/p99/max, SQL time, queries per request and the slowest query.
Paths are templates: {org} {long_thread} {connection} {before} {since} {inbox_version} are filled in.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import common  # noqa: E402
from benchmarks.common import fmt, percentile, print_table  # noqa: E402

ORG, OTHER_ORG = "bench-a", "bench-b"
EMAIL = "owner@bench.example"
FIRST = ("Maria Jose Ana Luis Carlos Sofia Lucas Emma Noah Mia Liam Olivia Ethan Ava Mateo Isabella Leo Chloe Omar "
         "Fatima Yusuf Aisha Hiro Yuki Chen Wei Priya Arjun Ivan Olga Pierre Camille Jonas Lena Tomas Eva").split()
LAST = ("Lopez Garcia Smith Jones Muller Schmidt Rossi Bianchi Dubois Martin Silva Santos Kim Lee Tanaka Sato "
        "Nguyen Tran Patel Shah Ivanov Petrov Kowalski Nowak Jensen Hansen Murphy Kelly Cohen Levi").split()
WORDS = ("hello thanks order delivery when where price shipping invoice size colour stock open today tomorrow please "
         "help question address change cancel track parcel payment card receipt store hours return exchange warranty "
         "discount booking table menu appointment confirm").split()
RARE = "voucher"  # appears in about 1 message in 400: a selective text search

DEFAULT_CASES = [
    ("inbox", "/o/{org}/inbox/", {}),
    ("inbox-poll (htmx, unchanged)", "/o/{org}/inbox/?v={inbox_version}", {"HTTP_HX_REQUEST": "true"}),
    ("inbox search name", "/o/{org}/inbox/?q=Lopez", {}),
    ("inbox search text (rare)", f"/o/{{org}}/inbox/?q={RARE}", {}),
    ("inbox search text (common)", "/o/{org}/inbox/?q=delivery", {}),
    ("inbox filter unanswered", "/o/{org}/inbox/?state=unanswered", {}),
    ("inbox filter human", "/o/{org}/inbox/?state=human", {}),
    ("inbox filter number", "/o/{org}/inbox/?connection={connection}", {}),
    ("long thread", "/o/{org}/threads/{long_thread}/", {}),
    ("long thread, earlier page", "/o/{org}/threads/{long_thread}/?before={before}", {}),
    ("long thread poll (htmx)", "/o/{org}/threads/{long_thread}/updates/?since={since}", {"HTTP_HX_REQUEST": "true"}),
    ("typical thread", "/o/{org}/threads/{typical_thread}/", {}),
]


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--db", default="sb_bench_dashboard")
    p.add_argument("--threads", type=int, default=10_000)
    p.add_argument("--messages", type=int, default=1_000_000)
    p.add_argument("--long-thread", type=int, default=20_000, help="messages in the longest thread")
    p.add_argument("--reseed", action="store_true")
    p.add_argument("--seed-only", action="store_true")
    p.add_argument("--repeat", type=int, default=50, help="timed requests per page (after 3 warm-ups)")
    p.add_argument("--case", action="append", default=[], metavar="NAME=PATH",
                   help="measure these paths instead of the default pages (repeatable)")
    p.add_argument("--only", default="", help="only cases whose name contains this")
    p.add_argument("--explain", action="store_true", help="EXPLAIN ANALYZE the slowest query of each page")
    p.add_argument("--no-record", action="store_true")
    return p.parse_args()


# --- seeding -------------------------------------------------------------------------------------------


def _columns(model, exprs: dict[str, str]) -> tuple[str, str]:
    """Column list and SELECT list for INSERT … SELECT: our expressions, else the model's default."""
    from django.db.models import JSONField

    cols, values = [], []
    for field in model._meta.concrete_fields:
        if getattr(field, "generated", False):
            continue
        cols.append(f'"{field.column}"')
        if field.column in exprs:
            values.append(exprs[field.column])
        elif field.has_default():
            default = field.get_default()
            if isinstance(field, JSONField):
                values.append("'" + json.dumps(default).replace("'", "''") + "'::jsonb")
            elif isinstance(default, bool):
                values.append("true" if default else "false")
            elif isinstance(default, int | float):
                values.append(repr(default))
            else:
                values.append("'" + str(default).replace("'", "''") + "'")
        elif field.null:
            values.append("NULL")
        else:
            raise SystemExit(f"seeding {model.__name__}: no value for required column {field.column}")
    return ", ".join(cols), ",\n       ".join(values)


def _sql_words(expr_i: str, expr_j: str) -> str:
    """Six to nine pseudo-random words, deterministic in (i, j); RARE in about 1 message in 400."""
    arr = "ARRAY[" + ",".join(f"'{w}'" for w in WORDS) + "]"
    n = len(WORDS)
    parts = [f"({arr})[1 + (({expr_i} * {a} + {expr_j} * {b} + {c}) % {n})]"
             for a, b, c in ((7, 13, 1), (11, 3, 5), (5, 17, 2), (3, 19, 7), (13, 7, 3), (17, 11, 9))]
    text = " || ' ' || ".join(parts)
    return (f"initcap({text}) || CASE WHEN ({expr_i} * 31 + {expr_j} * 7) % 400 = 0 THEN ' {RARE} code ' "
            f"|| ({expr_j} % 997) ELSE '' END || CASE WHEN {expr_j} % 2 = 0 THEN '?' ELSE '.' END")


def _drop_indexes(cursor, table: str) -> list[str]:
    """Drop the indexes of `table` that back no constraint; return their definitions."""
    cursor.execute(
        """SELECT i.relname, pg_get_indexdef(i.oid) FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
           WHERE x.indrelid = %s::regclass AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.oid)""",
        [table],
    )
    rows = cursor.fetchall()
    for name, _ in rows:
        cursor.execute(f'DROP INDEX "{name}"')
    return [definition for _, definition in rows]


def message_counts(args, rng: random.Random) -> list[int]:
    """Messages per thread: one long thread, the rest skewed (many short, some long), summing exactly.
    An odd count ends on the contact's message (waiting for a reply): every tenth thread."""
    rest = args.messages - args.long_thread
    weights = [rng.lognormvariate(0, 1.3) for _ in range(args.threads - 1)]
    scale = rest / sum(weights)
    counts = [args.long_thread] + [min(args.long_thread // 2, max(2, int(w * scale))) for w in weights]
    for i in range(1, len(counts)):
        if (counts[i] % 2 == 1) != (i % 10 == 3):
            counts[i] += 1 if counts[i] <= 2 or i % 2 else -1
    diff, i = args.messages - sum(counts), 1
    if diff % 2:
        counts[1] += 1 if diff > 0 else -1
        diff -= 1 if diff > 0 else -1
    while diff:
        step = 2 if diff > 0 else -2
        if step > 0 or counts[i] > 3:
            counts[i] += step
            diff -= step
        i = i % (len(counts) - 1) + 1
    return counts


def seed(args) -> dict:
    from django.contrib.auth import get_user_model
    from django.db import connection

    from apps.agents.models import Agent, AgentRun, ToolCall
    from apps.conversations.models import Message, Thread
    from apps.orgs.models import Membership, Organization, Role
    from apps.whatsapp.models import ConnectionStatus, WhatsAppConnection

    started = time.monotonic()
    rng = random.Random(7)
    org_a = Organization.objects.create(name="Bench Shop A", slug=ORG)
    org_b = Organization.objects.create(name="Bench Shop B", slug=OTHER_ORG)
    user = get_user_model().objects.create_user(username=EMAIL, email=EMAIL, password="bench-password-1")
    Membership.objects.create(user=user, org=org_a, role=Role.OWNER)
    conns, agents = [], {}
    for org, n in ((org_a, 0), (org_a, 1), (org_b, 2)):
        agent = agents.get(org.pk) or Agent.objects.create(org=org, name="Bench agent", slug="bench",
                                                            model_provider="offline", model_name="demo")
        agents[org.pk] = agent
        c = WhatsAppConnection(org=org, agent=agent, status=ConnectionStatus.CONNECTED, kapso_customer_id=f"cust-{n}",
                               phone_number_id=f"30000000000{n:04d}", display_phone_number=f"+1 555-030-{n:04d}")
        c.webhook_secret = f"secret-{n}"
        c.save()
        conns.append(c)

    counts = message_counts(args, rng)
    threads_a = int(args.threads * 0.9)
    now = datetime.now(UTC)
    ends, steps, orgs, conn_ids, agent_ids = [], [], [], [], []
    for i in range(len(counts)):
        # Recent activity is denser: the inbox's first page is a realistic mix of ages.
        ends.append(now - timedelta(minutes=int(60 * 24 * 60 * rng.random() ** 3)) if i else now - timedelta(minutes=3))
        steps.append(120 if i == 0 else rng.randint(30, 600))
        conn = conns[i % 2] if i < threads_a else conns[2]
        orgs.append(str(conn.org_id))
        conn_ids.append(str(conn.pk))
        agent_ids.append(str(conn.agent_id))
    first, last = ", ".join(f"'{w}'" for w in FIRST), ", ".join(f"'{w}'" for w in LAST)
    with connection.cursor() as cur:
        cur.execute("SET synchronous_commit = off")
        cur.execute("SET maintenance_work_mem = '256MB'")
        cur.execute("""CREATE TABLE bench_seed (i int PRIMARY KEY, n int, end_at timestamptz, step int,
                       org_id uuid, connection_id uuid, agent_id uuid, thread_id uuid)""")
        cur.execute(
            """INSERT INTO bench_seed SELECT i, n, e, s, o::uuid, c::uuid, a::uuid, md5('sb-thread-' || i)::uuid
               FROM unnest(%s::int[], %s::int[], %s::timestamptz[], %s::int[], %s::text[], %s::text[], %s::text[])
                    AS t(i, n, e, s, o, c, a)""",
            [list(range(len(counts))), counts, ends, steps, orgs, conn_ids, agent_ids],
        )
        dropped = {t: _drop_indexes(cur, t) for t in
                   ("conversations_thread", "conversations_message", "agents_agentrun", "agents_toolcall")}

        cols, values = _columns(Thread, {
            "id": "s.thread_id", "org_id": "s.org_id", "connection_id": "s.connection_id",
            "external_id": "'whatsapp:+4477' || lpad(s.i::text, 8, '0')",
            "contact_phone": "'+4477' || lpad(s.i::text, 8, '0')",
            "contact_name": f"(ARRAY[{first}])[1 + (s.i * 7) % {len(FIRST)}] || ' ' || "
                            f"(ARRAY[{last}])[1 + (s.i * 13) % {len(LAST)}]",
            "kapso_conversation_id": "''", "handoff": "CASE WHEN s.i % 20 = 7 THEN 'human' ELSE 'agent' END",
            "last_message_at": "s.end_at",
            "last_inbound_at": "s.end_at - CASE WHEN s.n % 2 = 0 THEN s.step * interval '1 second' "
                               "ELSE interval '0' END",
            "created_at": "s.end_at - (s.n - 1) * s.step * interval '1 second'", "updated_at": "s.end_at",
        })
        cur.execute(f"INSERT INTO conversations_thread ({cols}) SELECT {values} FROM bench_seed s")

        p_at = "(s.end_at - (s.n - 1 - 2 * p) * s.step * interval '1 second')"
        cols, values = _columns(AgentRun, {
            "id": "md5('sb-run-' || s.i || '-' || p)::uuid", "org_id": "s.org_id", "thread_id": "s.thread_id",
            "agent_id": "s.agent_id",
            "status": "CASE WHEN (s.i + 2 * p + 1) % 37 = 0 THEN 'skipped' WHEN (s.i * 3 + p) % 199 = 0 THEN 'failed' "
                      "ELSE 'succeeded' END",
            "attempts": "1",
            "error": "CASE WHEN (s.i + 2 * p + 1) % 37 = 0 THEN 'A person took over the conversation.' "
                     "WHEN (s.i * 3 + p) % 199 = 0 THEN 'Model error: the model timed out' ELSE '' END",
            "input_tokens": "200 + (p % 50) * 10", "output_tokens": "40 + (p % 30)",
            "started_at": f"{p_at} + interval '50 milliseconds'",
            "heartbeat_at": f"{p_at} + interval '50 milliseconds'",
            "finished_at": f"{p_at} + interval '900 milliseconds'",
            "created_at": p_at, "updated_at": f"{p_at} + interval '900 milliseconds'",
        })
        cur.execute(f"""INSERT INTO agents_agentrun ({cols})
                        SELECT {values} FROM bench_seed s CROSS JOIN LATERAL generate_series(0, s.n / 2 - 1) AS p""")

        at = "(s.end_at - (s.n - 1 - j) * s.step * interval '1 second')"
        outbound = "j % 2 = 1"
        operator = "(s.i + j) % 37 = 0"
        failed = "(s.i * 7 + j) % 101 = 0"
        answered = "(j / 2) < (s.n / 2)"  # the pair is complete: the inbound message has its answer
        cols, values = _columns(Message, {
            "id": "gen_random_uuid()", "org_id": "s.org_id", "thread_id": "s.thread_id",
            "connection_id": "s.connection_id",
            "direction": f"CASE WHEN {outbound} THEN 'outbound' ELSE 'inbound' END",
            "author": f"CASE WHEN NOT ({outbound}) THEN 'contact' WHEN {operator} THEN 'operator' ELSE 'agent' END",
            "type": "'text'", "text": _sql_words("s.i", "j"), "wamid": "'wamid.seed.' || s.i || '.' || j",
            "status": f"CASE WHEN NOT ({outbound}) THEN 'received' WHEN {failed} THEN 'failed' "
                      f"WHEN j >= s.n - 2 THEN 'delivered' ELSE 'read' END",
            "error_code": f"CASE WHEN {outbound} AND {failed} THEN '131047' ELSE '' END",
            "error_text": f"CASE WHEN {outbound} AND {failed} THEN 'Re-engagement message' ELSE '' END",
            "run_id": f"CASE WHEN {answered} AND NOT ({outbound} AND {operator}) "
                      f"THEN md5('sb-run-' || s.i || '-' || (j / 2))::uuid END",
            "send_attempts": f"CASE WHEN {outbound} THEN 1 ELSE 0 END",
            "sent_at": f"CASE WHEN {outbound} THEN {at} + interval '1 second' END",
            "created_at": at,
            "updated_at": f"{at} + CASE WHEN {outbound} THEN interval '30 seconds' ELSE interval '0' END",
        })
        cur.execute(f"""INSERT INTO conversations_message ({cols})
                        SELECT {values} FROM bench_seed s CROSS JOIN LATERAL generate_series(0, s.n - 1) AS j""")

        cols, values = _columns(ToolCall, {
            "id": "gen_random_uuid()", "org_id": "r.org_id", "run_id": "r.id", "step": "0",
            "name": "'whatsapp.getStatus'", "arguments": "'{}'::jsonb",
            "result": """'{"connection": "connected", "window": {"open": true}}'::jsonb""",
            "error": "''", "duration_ms": "12",
            "created_at": "r.started_at + interval '300 milliseconds'",
            "updated_at": "r.started_at + interval '300 milliseconds'",
        })
        cur.execute(f"""INSERT INTO agents_toolcall ({cols}) SELECT {values} FROM agents_agentrun r
                        WHERE r.status = 'succeeded' AND get_byte(decode(md5(r.id::text), 'hex'), 0) < 13""")
        loaded = time.monotonic() - started
        for definitions in dropped.values():
            for definition in definitions:
                cur.execute(definition)
        indexed = time.monotonic() - started - loaded
        cur.execute("""CREATE TABLE bench_seed_info AS SELECT %s::int AS threads, %s::int AS messages,
                       %s::int AS long_thread, now() AS seeded_at""", [args.threads, args.messages, args.long_thread])
    connection.close()
    common.psql("VACUUM ANALYZE", args.db)
    total = time.monotonic() - started
    return {"load_s": round(loaded, 1), "indexes_s": round(indexed, 1), "total_s": round(total, 1)}


def seeded_sizes(db: str) -> tuple | None:
    try:
        out = common.psql("SELECT threads, messages, long_thread FROM bench_seed_info", db)
    except Exception:  # noqa: BLE001 - no such table: not seeded
        return None
    return tuple(int(x) for x in out.split("|")) if out else None


# --- measuring -----------------------------------------------------------------------------------------


class QueryLog:
    def __init__(self):
        self.queries: list[tuple[float, str, object]] = []

    def __call__(self, execute, sql, params, many, context):
        start = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            self.queries.append((time.perf_counter() - start, sql, params))


def placeholders() -> dict:
    from django.db import connection

    from apps.conversations.models import Message, Thread
    from apps.orgs.models import Organization
    from apps.whatsapp.models import WhatsAppConnection

    org = Organization.objects.get(slug=ORG)
    long_thread = Thread.objects.get(external_id="whatsapp:+447700000000")
    middle = Message.objects.filter(thread=long_thread).order_by("created_at")[10_000 // 2:10_000 // 2 + 1].first()
    typical = (Thread.objects.filter(org=org).order_by("-last_message_at")[:200].values_list("id", flat=True))
    values = {
        "org": ORG, "long_thread": long_thread.pk, "typical_thread": list(typical)[min(137, len(typical) - 1)],
        "connection": WhatsAppConnection.objects.filter(org=org).order_by("phone_number_id").first().pk,
        "before": middle.created_at.isoformat() if middle else "",
        "since": (datetime.now(UTC) - timedelta(seconds=15)).isoformat(),
    }
    try:
        from apps.conversations.selectors import inbox_version

        values["inbox_version"] = inbox_version(org=org)
    except ImportError:
        pass
    connection.close()
    return values


def measure(client, path: str, headers: dict, repeat: int, explain: bool) -> dict:
    from django.db import connection

    for _ in range(3):
        client.get(path, **headers)
    times, sql_times, counts, sizes, statuses = [], [], [], [], {}
    slowest = (0.0, "", None)
    for _ in range(repeat):
        log = QueryLog()
        with connection.execute_wrapper(log):
            start = time.perf_counter()
            response = client.get(path, **headers)
            elapsed = time.perf_counter() - start
        times.append(1000 * elapsed)
        sql_times.append(1000 * sum(q[0] for q in log.queries))
        counts.append(len(log.queries))
        sizes.append(len(response.content))
        statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
        top = max(log.queries, default=(0.0, "", None), key=lambda q: q[0])
        if top[0] > slowest[0]:
            slowest = top
    result = {
        "p50_ms": round(percentile(times, 50), 2), "p99_ms": round(percentile(times, 99), 2),
        "max_ms": round(max(times), 2), "sql_p50_ms": round(percentile(sql_times, 50), 2),
        "queries_min": min(counts), "queries_max": max(counts), "bytes": sizes[-1], "statuses": statuses,
        "slowest_query_ms": round(1000 * slowest[0], 2), "slowest_query": slowest[1][:600],
    }
    if explain and slowest[1]:
        with connection.cursor() as cursor:
            cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + slowest[1], slowest[2])
            result["slowest_query_plan"] = "\n".join(row[0] for row in cursor.fetchall())
    return result


def main() -> None:
    args = parse_args()
    print(f"database {args.db}")
    sizes = (args.threads, args.messages, args.long_thread)
    seeding = None
    if args.reseed or not common.db_exists(args.db) or seeded_sizes(args.db) != sizes:
        common.db_recreate(args.db)
        common.migrate(args.db)
        common.django_setup(args.db)
        print(f"seeding {args.threads:,} threads / {args.messages:,} messages …", flush=True)
        seeding = seed(args)
        print(f"seeded in {seeding['total_s']} s (rows {seeding['load_s']} s, indexes {seeding['indexes_s']} s)")
    else:
        common.migrate(args.db)  # new migrations of the product apply to the seeded data
        common.django_setup(args.db)
        print("reusing the seeded database (--reseed to redo)")
    if args.seed_only:
        return

    from django.contrib.auth import get_user_model
    from django.test import Client

    values = placeholders()
    cases = DEFAULT_CASES
    if args.case:
        cases = [(c.split("=", 1)[0], c.split("=", 1)[1], {}) for c in args.case]
    client = Client(HTTP_HOST="127.0.0.1")
    client.force_login(get_user_model().objects.get(email=EMAIL))
    rows, results = [], {}
    for name, template, headers in cases:
        if args.only and args.only not in name:
            continue
        try:
            path = template.format(**values)
        except KeyError as missing:
            print(f"skip {name}: no value for {missing}")
            continue
        r = measure(client, path, headers, args.repeat, args.explain)
        r["path"] = path
        results[name] = r
        rows.append([name, r["p50_ms"], r["p99_ms"], r["max_ms"], r["sql_p50_ms"],
                     f"{r['queries_min']}" + (f"–{r['queries_max']}" if r["queries_max"] != r["queries_min"] else ""),
                     r["slowest_query_ms"], ",".join(f"{k}×{v}" for k, v in r["statuses"].items()),
                     fmt(r["bytes"])])
    print()
    print_table(["page", "p50 ms", "p99 ms", "max ms", "SQL p50 ms", "queries", "slowest q ms", "status", "bytes"],
                rows)
    bad = [n for n, r in results.items() if set(r["statuses"]) - {200, 204}]
    if bad:
        print(f"\nNOT 200: {', '.join(bad)} — check the paths (dashboard URLs may have changed): "
              f"{json.dumps({n: results[n]['path'] for n in bad})}")
    print("\nslowest query per page:")
    for name, r in results.items():
        print(f"  {name}: {r['slowest_query_ms']} ms  {r['slowest_query'][:300]}")
        if r.get("slowest_query_plan"):
            print("    " + r["slowest_query_plan"].replace("\n", "\n    "))
    if not args.no_record:
        common.append_result("dashboard", {"pages": results, "seeding": seeding},
                             settings={"threads": args.threads, "messages": args.messages,
                                       "long_thread": args.long_thread, "repeat": args.repeat})


if __name__ == "__main__":
    main()
