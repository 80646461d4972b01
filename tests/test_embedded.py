"""The embedded PostgreSQL and Redis (config/embedded.py) that scripts/run and scripts/test start on a
machine without them: real servers from the project's own wheels, with pgvector and pg_trgm."""

import psycopg
import pytest
import redis

from config.embedded import embedded_postgres, embedded_redis
from tests.conftest import embedded_folder


def test_the_embedded_postgres_has_pgvector_and_pg_trgm(embedded_postgres_url):
    with psycopg.connect(embedded_postgres_url, autocommit=True) as connection:
        connection.execute("CREATE EXTENSION IF NOT EXISTS vector")
        connection.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        distance = connection.execute("SELECT '[1,2,3]'::vector <-> '[1,2,4]'::vector").fetchone()[0]
        similar = connection.execute("SELECT similarity('switchboard', 'switchbord')").fetchone()[0]

    assert distance == pytest.approx(1.0)
    assert similar > 0.5


def test_the_embedded_postgres_keeps_its_data_across_restarts():
    with embedded_folder() as folder:
        with embedded_postgres(folder / "pg") as url, psycopg.connect(url, autocommit=True) as connection:
            connection.execute("CREATE TABLE kept (note text)")
            connection.execute("INSERT INTO kept VALUES ('still here')")
        with embedded_postgres(folder / "pg") as url, psycopg.connect(url) as connection:
            assert connection.execute("SELECT note FROM kept").fetchone() == ("still here",)


def test_the_embedded_redis_answers_and_stops(tmp_path):
    with embedded_redis(tmp_path / "redis") as url:
        client = redis.Redis.from_url(url)
        client.set("switchboard", "up")
        assert client.get("switchboard") == b"up"

    with pytest.raises(redis.ConnectionError):
        redis.Redis.from_url(url, socket_connect_timeout=1).ping()
