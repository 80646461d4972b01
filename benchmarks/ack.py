"""Webhook acknowledgement benchmark: Switchboard's messages webhook against a bare baseline view.

    .venv/bin/python benchmarks/ack.py [--rounds 3] [--duration 10] [--connections 16] [--profile]

One gunicorn (deploy/gunicorn.conf.py: sync workers, DEBUG off, persistent connections) serves both
endpoints from benchmarks.settings, on a fresh database sb_bench_ack and Redis DB 14; no
Celery worker runs (tasks queue up in Redis, flushed between runs). `wrk` (closed loop, 16
connections) replays signed `whatsapp.message.received` deliveries shaped like the fixtures, each
with its own X-Idempotency-Key and wamid; half come from new contacts, half from existing threads.
Rounds alternate the order (B S, S B, B S, ...) so slow drift hits both sides alike. Reported:
requests/s, p50/p99/max latency, non-200s, CPU per request by process, rows stored and tasks
queued per run, and the share of the machine other people used meanwhile (noise).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import common, profiling  # noqa: E402
from benchmarks.common import fmt, median, print_table  # noqa: E402

SWITCHBOARD_PATH = "/webhook/kapso/messages"
BASELINE_PATH = "/bench/baseline"
CONNECTION_SECRET = "bench-connection-secret"
BASELINE_SECRET = "bench-baseline-secret"
PHONE_NUMBER_ID = "106540352242922"
LUA = Path(__file__).resolve().parent / "ack.lua"
TARGETS = {"baseline": (BASELINE_PATH, BASELINE_SECRET), "switchboard": (SWITCHBOARD_PATH, CONNECTION_SECRET)}


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--duration", type=int, default=10, help="seconds per measured run")
    p.add_argument("--warmup", type=int, default=3, help="seconds of discarded load per endpoint first")
    p.add_argument("--connections", type=int, default=16)
    p.add_argument("--wrk-threads", type=int, default=1, help="one wrk thread is far from its limit here")
    p.add_argument("--workers", type=int, default=None, help="gunicorn workers (default: the config's, 2 per core)")
    p.add_argument("--gunicorn-arg", action="append", default=[], help="extra gunicorn argument (repeatable)")
    p.add_argument("--port", type=int, default=8200)
    p.add_argument("--db", default="sb_bench_ack")
    p.add_argument("--existing-threads", type=int, default=2000)
    p.add_argument("--new-share", type=float, default=0.5, help="share of deliveries from new contacts")
    p.add_argument("--pool", type=int, default=None, help="pre-signed deliveries per run (default 6000/s × duration)")
    p.add_argument("--only", choices=sorted(TARGETS), help="measure one endpoint only")
    p.add_argument("--profile", action="store_true", help="after the rounds, one extra Switchboard run under py-spy")
    p.add_argument("--profile-idle", action="store_true", help="profile wall time (I/O waits too), not only CPU")
    p.add_argument("--inprocess", type=int, metavar="N", default=0,
                   help="no server: N requests per endpoint through Django's handler in this process, "
                        "reporting CPU and queries per request (steady on a busy machine)")
    p.add_argument("--no-record", action="store_true", help="do not append to benchmarks/results.jsonl")
    return p.parse_args()


# --- data ------------------------------------------------------------------------------------------


def seed(existing_threads: int) -> list[str]:
    """One org, an offline agent, a connected number with that agent, and threads of known contacts."""
    from django.db import connections

    from apps.agents.models import Agent
    from apps.conversations.models import Thread
    from apps.orgs.models import Organization
    from apps.whatsapp.models import ConnectionStatus, WhatsAppConnection

    org = Organization.objects.create(name="Bench Shop", slug="bench-shop")
    agent = Agent.objects.create(org=org, name="Bench agent", slug="bench", model_provider="offline",
                                 model_name="demo", system_prompt="You help {{organizationName}}.",
                                 tools=["whatsapp.send", "whatsapp.getConversation", "whatsapp.getStatus"])
    connection = WhatsAppConnection(org=org, agent=agent, status=ConnectionStatus.CONNECTED,
                                    kapso_customer_id=str(uuid.uuid4()), phone_number_id=PHONE_NUMBER_ID,
                                    display_phone_number="+1 555-010-0000")
    connection.webhook_secret = CONNECTION_SECRET
    connection.save()
    phones = [f"+4410{n:08d}" for n in range(existing_threads)]
    Thread.objects.bulk_create(
        [Thread(org=org, connection=connection, external_id=f"whatsapp:{ph}", contact_phone=ph,
                contact_name=f"Known {n}") for n, ph in enumerate(phones)],
        batch_size=1000,
    )
    connections.close_all()
    return phones


class Deliveries:
    """Pre-signed deliveries written to a file for ack.lua: unique keys and wamids, mixed contacts."""

    def __init__(self, existing: list[str], new_share: float):
        template = common.received_template()
        marks = {"phone_number_id": "@PNID@", "phone": "@PHONE@", "wamid": "@WAMID@", "text": "@TEXT@",
                 "contact_name": "@NAME@", "conversation_id": "@CONV@", "timestamp": 1}
        body = common.compact(common.received_payload(template, **marks)).decode()
        self.template = body.replace('"timestamp":"1"', '"timestamp":"@TS@"').replace("@PNID@", PHONE_NUMBER_ID)
        self.existing, self.new_share, self.batch = existing, new_share, 0
        self.rng = random.Random(1234)

    def write(self, path: Path, target: str, count: int) -> dict:
        url_path, secret = TARGETS[target]
        self.batch += 1
        rng, words, new, sizes = self.rng, common.WORDS, 0, 0
        ts = str(int(time.time()))
        with path.open("w") as f:
            for n in range(count):
                if rng.random() < self.new_share:
                    phone, name = f"+49{self.batch:03d}{n:08d}", f"New {self.batch}-{n}"
                    new += 1
                else:
                    phone = rng.choice(self.existing)
                    name = "Known " + phone[-6:]
                text = " ".join(rng.choice(words) for _ in range(rng.randint(8, 24))).capitalize() + "?"
                wamid = common.new_wamid()
                body = (self.template.replace("@PHONE@", phone).replace("@WAMID@", wamid).replace("@TEXT@", text)
                        .replace("@NAME@", name).replace("@CONV@", str(uuid.uuid4())).replace("@TS@", ts))
                raw = body.encode()
                sizes += len(raw)
                f.write(f"{url_path}\t{uuid.uuid4()}\t{common.sign(secret, raw)}\t{body}\n")
        return {"count": count, "new_contacts": new, "mean_body_bytes": round(sizes / max(1, count))}


def stored_counts() -> dict[str, int]:
    from django.db import connection

    with connection.cursor() as c:
        c.execute("""SELECT (SELECT count(*) FROM webhooks_webhookevent), (SELECT count(*) FROM conversations_message),
                            (SELECT count(*) FROM conversations_thread), (SELECT count(*) FROM agents_agentrun),
                            (SELECT count(*) FROM bench_baseline_baselinedelivery)""")
        events, messages, threads, runs, baseline = c.fetchone()
    connection.close()
    return {"events": events, "messages": messages, "threads": threads, "runs": runs, "baseline_rows": baseline}


def queued_tasks() -> dict[str, int]:
    import redis

    r = redis.Redis.from_url(common.REDIS_URL)
    out = {}
    for key in r.scan_iter(count=1000):
        if r.type(key) == b"list":
            name = key.decode(errors="replace").split("\x06")[0]
            out[name] = out.get(name, 0) + r.llen(key)
    return out


# --- wrk -------------------------------------------------------------------------------------------


def run_wrk(args, url: str, lua_args: list[str], duration: int) -> tuple[dict, float]:
    """Run wrk; return its JSON summary and the CPU seconds it used."""
    cmd = ["wrk", "-t", str(args.wrk_threads), "-c", str(args.connections), "-d", f"{duration}s", "--timeout", "5s",
           "--latency", "-s", str(LUA), url, "--", *lua_args]
    before = os.times()
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 120)
    after = os.times()
    cpu = (after.children_user - before.children_user) + (after.children_system - before.children_system)
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("WRK_JSON ")), None)
    if line is None:
        raise SystemExit(f"wrk failed:\n{out.stdout}\n{out.stderr}")
    return json.loads(line[len("WRK_JSON "):]), cpu


def figures_of(result: dict, wrk_cpu: float, cpu: dict, stored: dict, queued: dict) -> dict:
    seconds = result["duration_us"] / 1e6
    requests = result["requests"]
    lat = result["latency_us"]
    errors = sum(result["errors"].values()) - result["errors"]["status"]
    per_req = lambda s: round(1000 * s / requests, 3) if requests else None  # noqa: E731
    return {
        "rps": round(requests / seconds, 1),
        "requests": requests,
        "p50_ms": lat["p50"] / 1000, "p90_ms": lat["p90"] / 1000, "p99_ms": lat["p99"] / 1000,
        "p999_ms": lat["p999"] / 1000, "max_ms": lat["max"] / 1000, "mean_ms": round(lat["mean"] / 1000, 3),
        "non200": result["non200"], "socket_errors": errors, "pool_wrapped": result["wrapped"],
        "wrk_cpu_pct_of_thread": round(100 * wrk_cpu / seconds / max(1, result.get("threads", 1)), 1),
        "cpu_ms_per_request": {k: per_req(v) for k, v in cpu["cpu_s"].items()},
        "machine_busy_pct": cpu["machine_busy_pct"], "foreign_cpu_pct": cpu["foreign_cpu_pct"],
        "pg_sessions_opened": cpu.get("pg_sessions_opened"),
        "stored": stored, "queued": queued,
    }


def worker_boots(log: Path, since: int) -> tuple[int, int]:
    text = log.read_text(errors="replace") if log.exists() else ""
    return text.count("Booting worker", since), len(text)


# --- in process ----------------------------------------------------------------------------------


def inprocess(args, deliveries: Deliveries, work: Path) -> None:
    """CPU and queries per request of each endpoint, through Django's full handler, no network."""
    from django.db import connection
    from django.test import Client

    client = Client(HTTP_HOST="127.0.0.1")
    figures = {}
    for r in range(1, args.rounds + 1):
        for target in ([args.only] if args.only else ["baseline", "switchboard"]):
            file = work / f"inproc-{target}.tsv"
            deliveries.write(file, target, args.inprocess + 50)
            lines = [line.rstrip("\n").split("\t", 3) for line in file.open()]
            file.unlink()

            def post(rows, client=client, target=target):
                for path, key, sig, body in rows:
                    response = client.generic(
                        "POST", path, body, content_type="application/json",
                        HTTP_X_WEBHOOK_EVENT="whatsapp.message.received", HTTP_X_WEBHOOK_SIGNATURE=sig,
                        HTTP_X_IDEMPOTENCY_KEY=key, HTTP_X_WEBHOOK_PAYLOAD_VERSION="v2")
                    if response.status_code != 200:
                        raise SystemExit(f"{target}: {response.status_code} {response.content[:300]!r}")

            post(lines[:49])
            queries: list[str] = []
            with connection.execute_wrapper(lambda ex, sql, params, many, ctx, log=queries: log.append(sql) or
                                            ex(sql, params, many, ctx)):
                post(lines[49:50])
            rows = lines[50:]
            t0, c0 = time.perf_counter(), os.times()
            post(rows)
            t1, c1 = time.perf_counter(), os.times()
            n = len(rows)
            fig = {"wall_ms": round(1000 * (t1 - t0) / n, 3),
                   "cpu_ms": round(1000 * ((c1.user - c0.user) + (c1.system - c0.system)) / n, 3),
                   "user_ms": round(1000 * (c1.user - c0.user) / n, 3), "queries": len(queries),
                   "sql": [" ".join(q.split())[:90] for q in queries]}
            figures.setdefault(target, []).append(fig)
            print(f"  round {r} {target:11s} CPU {fig['cpu_ms']:.3f} ms/req (user {fig['user_ms']:.3f}), "
                  f"wall {fig['wall_ms']:.3f} ms/req, {fig['queries']} queries (+ BEGIN/COMMIT, health check)")
    summary = {t: {"cpu_ms": median([f["cpu_ms"] for f in fs]), "wall_ms": median([f["wall_ms"] for f in fs]),
                   "queries": fs[0]["queries"], "sql": fs[0]["sql"]} for t, fs in figures.items()}
    print()
    print_table(["endpoint", "CPU ms/req", "wall ms/req", "queries"],
                [[t, s["cpu_ms"], s["wall_ms"], s["queries"]] for t, s in summary.items()])
    for t, s in summary.items():
        print(f"\n{t} queries:\n  " + "\n  ".join(s["sql"]))
    if "baseline" in summary and "switchboard" in summary:
        ratio = summary["switchboard"]["cpu_ms"] / summary["baseline"]["cpu_ms"]
        print(f"\nCPU per request, Switchboard / baseline: {ratio:.2f}×")
    if not args.no_record:
        common.append_result("ack-inprocess", {"summary": summary, "runs": figures},
                             settings={"requests": args.inprocess, "rounds": args.rounds})


# --- main ------------------------------------------------------------------------------------------


def main() -> None:
    args = parse_args()
    if args.inprocess:
        work = Path(tempfile.mkdtemp(prefix="sb_bench_ack_"))
        common.db_recreate(args.db)
        common.migrate(args.db)
        common.django_setup(args.db, BENCH_BASELINE_SECRET=BASELINE_SECRET)
        common.redis_flush()
        inprocess(args, Deliveries(seed(args.existing_threads), args.new_share), work)
        return
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed: apt-get install -y wrk")
    pool = args.pool or max(20000, 6000 * args.duration)
    work = Path(tempfile.mkdtemp(prefix="sb_bench_ack_"))
    print(f"database {args.db}, Redis DB {common.REDIS_DB}, port {args.port}, scratch {work}")

    common.db_recreate(args.db)
    common.migrate(args.db)
    common.django_setup(args.db)
    existing = seed(args.existing_threads)
    deliveries = Deliveries(existing, args.new_share)
    common.redis_flush()

    env = common.bench_env(args.db, BENCH_BASELINE_SECRET=BASELINE_SECRET)
    if args.workers:
        env["WEB_CONCURRENCY"] = str(args.workers)
    log = work / "gunicorn.log"
    web = common.start_gunicorn(args.port, env, log, args.gunicorn_arg)
    base_url = f"http://127.0.0.1:{args.port}"
    runs: list[dict] = []
    profile = None
    try:
        common.wait_for(lambda: common.http_ok(base_url + "/readyz"), 60, "gunicorn /readyz")
        workers = len(common.children(web.pid))
        redis_pid = common.redis_server_pid()
        print(f"gunicorn up: {workers} sync workers (pid {web.pid})")

        # The load generator's ceiling: plain GETs of the lightest view, on the same box.
        ceiling, ceiling_cpu = run_wrk(args, base_url, ["GET", "/healthz"], 3)
        ceiling_rps = ceiling["requests"] / (ceiling["duration_us"] / 1e6)
        print(f"generator check: wrk drove /healthz at {ceiling_rps:,.0f} req/s "
              f"using {100 * ceiling_cpu / 3:.0f}% of one core")

        def one_run(target: str, duration: int, label: str) -> dict:
            common.redis_flush()
            common.psql("CHECKPOINT")
            file = work / f"{label}.tsv"
            info = deliveries.write(file, target, pool)
            before = stored_counts()
            boots0, offset = worker_boots(log, 0)
            meter = common.CpuMeter({"web": web.pid}, db=args.db, redis_pid=redis_pid)
            with meter:
                result, wrk_cpu = run_wrk(args, base_url, ["POST", str(file), str(args.wrk_threads)], duration)
            time.sleep(0.5)  # requests in flight when wrk stopped
            after = stored_counts()
            stored = {k: after[k] - before[k] for k in after}
            cpu = meter.report({"wrk": wrk_cpu})
            result["threads"] = args.wrk_threads
            fig = figures_of(result, wrk_cpu, cpu, stored, queued_tasks())
            fig.update(target=target, label=label, pool=info, worker_restarts=worker_boots(log, offset)[0])
            file.unlink()
            return fig

        for target in ([args.only] if args.only else ["baseline", "switchboard"]):
            one_run(target, args.warmup, f"warmup-{target}")
        for r in range(1, args.rounds + 1):
            order = ["baseline", "switchboard"] if r % 2 else ["switchboard", "baseline"]
            for target in ([args.only] if args.only else order):
                fig = one_run(target, args.duration, f"r{r}-{target}")
                runs.append(fig)
                print(f"  round {r} {target:11s} {fig['rps']:8,.0f} req/s  p50 {fig['p50_ms']:.1f} ms  "
                      f"p99 {fig['p99_ms']:.1f} ms  max {fig['max_ms']:.1f} ms  non-200 {fig['non200']}  "
                      f"web {fig['cpu_ms_per_request'].get('web')} ms CPU/req  "
                      f"foreign CPU {fig['foreign_cpu_pct']}%")

        if args.profile or args.profile_idle:
            out = work / "pyspy.txt"
            spy = profiling.record(web.pid, args.duration, out, idle=args.profile_idle)
            time.sleep(1.0)
            fig = one_run("switchboard", args.duration, "profile")
            spy.wait(60)
            if out.exists():
                profile = profiling.summarise(out)
                profile["under_profiler"] = {k: fig[k] for k in ("rps", "p50_ms", "p99_ms")}
                profile["raw"] = str(out)
                profiling.print_summary(profile)
            else:
                print("py-spy produced nothing:", spy.stderr.read().decode(errors="replace")[-2000:])
    finally:
        web.stop()
    report(args, runs, workers, ceiling_rps, ceiling_cpu, profile)
    print(f"scratch files (gunicorn log, profile): {work}")


def report(args, runs: list[dict], workers: int, ceiling_rps: float, ceiling_cpu: float, profile) -> None:
    print()
    print_table(
        ["run", "req/s", "p50 ms", "p99 ms", "max ms", "non-200", "err", "web CPU ms/req", "pg CPU ms/req",
         "wrk CPU %", "restarts", "foreign CPU %"],
        [[f"{f['label']}", f["rps"], f["p50_ms"], f["p99_ms"], f["max_ms"], f["non200"], f["socket_errors"],
          fmt(f["cpu_ms_per_request"].get("web"), 3), fmt(f["cpu_ms_per_request"].get("postgres"), 3),
          f["wrk_cpu_pct_of_thread"], f["worker_restarts"], f["foreign_cpu_pct"]] for f in runs],
    )
    summary = {}
    for target in TARGETS:
        mine = [f for f in runs if f["target"] == target]
        if not mine:
            continue
        summary[target] = {
            "rps": median([f["rps"] for f in mine]),
            "p50_ms": median([f["p50_ms"] for f in mine]),
            "p99_ms": median([f["p99_ms"] for f in mine]),
            "max_ms": median([f["max_ms"] for f in mine]),
            "non200_total": sum(f["non200"] + f["socket_errors"] for f in mine),
            "web_cpu_ms_per_request": median([f["cpu_ms_per_request"].get("web") for f in mine]),
            "pg_cpu_ms_per_request": median([f["cpu_ms_per_request"].get("postgres") for f in mine]),
            "cpu_ms_per_request": {k: median([f["cpu_ms_per_request"].get(k) for f in mine])
                                   for k in mine[0]["cpu_ms_per_request"]},
            "foreign_cpu_pct": median([f["foreign_cpu_pct"] for f in mine]),
            "pool_wrapped": sum(f["pool_wrapped"] for f in mine),
        }
    ratio = None
    if "baseline" in summary and "switchboard" in summary and summary["baseline"]["rps"]:
        ratio = round(summary["switchboard"]["rps"] / summary["baseline"]["rps"], 3)
    sb = summary.get("switchboard", {})
    targets = {
        "ratio_ge_0.7": ratio is not None and ratio >= 0.7,
        "p99_lt_50ms": bool(sb) and sb["p99_ms"] < 50,
        "zero_non200": bool(sb) and sb["non200_total"] == 0,
    }
    print(f"\nmedians of {args.rounds} rounds × {args.duration} s, {args.connections} connections, "
          f"{workers} gunicorn sync workers:")
    print_table(["endpoint", "req/s", "p50 ms", "p99 ms", "max ms", "non-200", "web CPU ms/req", "foreign CPU %"],
                [[k, v["rps"], v["p50_ms"], v["p99_ms"], v["max_ms"], v["non200_total"],
                  fmt(v["web_cpu_ms_per_request"], 3), v["foreign_cpu_pct"]] for k, v in summary.items()])
    if ratio is not None:
        print(f"\nSwitchboard / baseline throughput: {ratio:.2f}× (target ≥ 0.70×)")
    print("targets: " + ", ".join(f"{k} {'PASS' if v else 'FAIL'}" for k, v in targets.items()))
    wrk_share = max([f["wrk_cpu_pct_of_thread"] for f in runs] or [0])
    fastest = max([f["rps"] for f in runs] or [0])
    verdict = "not the bottleneck" if wrk_share < 50 and ceiling_rps > fastest else "CHECK: it may limit these runs"
    print(f"generator: wrk used at most {wrk_share:.0f}% of its thread(s) during the runs and drove /healthz "
          f"at {ceiling_rps:,.0f} req/s (fastest run {fastest:,.0f}): {verdict}")
    for name, s in summary.items():
        # Our database's backends, not the whole cluster (which counts other people's work too).
        per_request = sum(v or 0 for k, v in s["cpu_ms_per_request"].items() if k != "postgres_all") / 1000
        s["cpu_bound_rps_estimate"] = round((os.cpu_count() or 2) / per_request) if per_request > 0 else None
        print(f"{name}: {per_request * 1000:.2f} ms of CPU per request (web, its PostgreSQL backends, Redis, wrk) "
              f"→ ~{s['cpu_bound_rps_estimate'] or 0:,} req/s if it had the whole machine (estimate)")
    if any(f["pool_wrapped"] for f in runs):
        print("WARNING: a run used up its pre-signed deliveries and replayed some (duplicates); raise --pool")
    noisy = [f["label"] for f in runs if (f["foreign_cpu_pct"] or 0) > 10]
    if noisy:
        print(f"NOISE: other processes used >10% of the machine during {', '.join(noisy)}: figures are noisy")
    if not args.no_record:
        common.append_result(
            "ack",
            {"summary": summary, "ratio": ratio, "targets": targets, "runs": runs,
             "generator": {"healthz_rps": round(ceiling_rps, 1), "healthz_wrk_cpu_s": round(ceiling_cpu, 3)},
             "profile": profile},
            settings={"rounds": args.rounds, "duration_s": args.duration, "connections": args.connections,
                      "wrk_threads": args.wrk_threads, "gunicorn_workers": workers, "gunicorn_args": args.gunicorn_arg,
                      "new_share": args.new_share, "existing_threads": args.existing_threads},
        )


if __name__ == "__main__":
    main()
