"""Knowledge search benchmark: time of one `knowledge_search` over an agent with 10,000 chunks.

    .venv/bin/python benchmarks/knowledge.py [--chunks 10000] [--queries 300]

Recreates the database sb_bench_knowledge, migrates it, and stores for one agent `--chunks`
passages of ~120 words (a business vocabulary plus a long tail of rarer words, so some query words
are common and some rare), plus 2,000 passages of another org's agent (every query filters by
agent). Then it runs `--queries` searches of 4–10-word questions in this process, through the
same function the `knowledge.search` tool and `knowledge_auto` call, and reports p50/p95/max in
milliseconds. Target: p50 < 50 ms.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import common  # noqa: E402
from benchmarks.common import percentile, print_table  # noqa: E402

DB = "sb_bench_knowledge"
COMMON = ("order delivery shipping price refund return exchange warranty store opening hours payment card invoice "
          "receipt discount voucher booking table menu appointment account password address parcel tracking size "
          "colour stock product service support contact email phone holiday weekend monday friday city").split()
TAIL = [f"term{i}" for i in range(5000)]  # rarer words, each in a few passages
FILLER = "the a of to and in for with on is are we you our your it this that be can will".split()


def passage(rng: random.Random) -> str:
    words = [rng.choice(FILLER) if rng.random() < 0.4 else
             (rng.choice(COMMON) if rng.random() < 0.6 else rng.choice(TAIL)) for _ in range(120)]
    return " ".join(words).capitalize() + "."


def question(rng: random.Random) -> str:
    pool = COMMON + TAIL[:2000]
    return " ".join(rng.choice(FILLER + pool) for _ in range(rng.randint(4, 10))) + "?"


def seed(chunks: int) -> tuple[str, int]:
    from apps.agents.models import Agent
    from apps.knowledge.models import KnowledgeChunk, KnowledgeSource
    from apps.orgs.models import Organization

    rng = random.Random(7)
    agent_id = None
    for slug, count in (("bench-a", chunks), ("bench-b", 2000)):
        org = Organization.objects.create(name=slug, slug=slug)
        agent = Agent.objects.create(org=org, name="Agent", slug="agent")
        agent_id = agent_id or agent.id
        for start in range(0, count, 1000):
            source = KnowledgeSource.objects.create(org=org, agent=agent, kind="text", title=f"Document {start}")
            KnowledgeChunk.objects.bulk_create(
                KnowledgeChunk(org=org, agent=agent, source=source, position=i, text=passage(rng))
                for i in range(min(1000, count - start))
            )
    common.psql("VACUUM ANALYZE knowledge_knowledgechunk", db=DB)
    return str(agent_id), KnowledgeChunk.objects.filter(agent_id=agent_id).count()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=10_000)
    parser.add_argument("--queries", type=int, default=300)
    args = parser.parse_args()

    common.db_recreate(DB)
    common.migrate(DB)
    common.django_setup(DB)
    from apps.knowledge.selectors import knowledge_search

    agent_id, stored = seed(args.chunks)
    rng = random.Random(11)
    for _ in range(20):  # warm the connection and the caches
        knowledge_search(agent_id=agent_id, query=question(rng), limit=5)
    times, found = [], 0
    for _ in range(args.queries):
        started = time.perf_counter()
        found += bool(knowledge_search(agent_id=agent_id, query=question(rng), limit=5))
        times.append((time.perf_counter() - started) * 1000)
    figures = {"chunks": stored, "queries": args.queries, "answered": found, "p50_ms": percentile(times, 50),
               "p95_ms": percentile(times, 95), "max_ms": max(times)}
    print_table(["chunks", "queries", "with results", "p50 ms", "p95 ms", "max ms"],
                [[stored, args.queries, found, figures["p50_ms"], figures["p95_ms"], figures["max_ms"]]])
    common.append_result("knowledge", figures)


if __name__ == "__main__":
    main()
