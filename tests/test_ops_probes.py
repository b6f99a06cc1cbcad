"""/healthz and /readyz: unauthenticated, cheap, answered for the pod's own address over plain HTTP,
never naming a host, a user or a password. /readyz goes to 503 when the database or the broker cannot
be reached or the secrets folder cannot be read, and back to 200 when they can: in-process for the
broker and the folder, and with a real gunicorn (the production settings) whose database and broker
are reached through a TCP relay this test closes and opens again, so the shared services stay up."""

import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.test import Client

POD = {"HTTP_HOST": "10.1.2.3:8000"}  # the kubelet asks the pod's own address, which ALLOWED_HOSTS refuses


@pytest.fixture
def production_like(settings, secrets_dir):
    settings.ALLOWED_HOSTS, settings.SECURE_SSL_REDIRECT = ["ardamail-admin.example.com"], True
    return settings


def test_healthz_answers_without_the_database_or_a_login(client, production_like):
    response = client.get("/healthz", **POD)  # no `db` fixture: touching the database would raise
    assert response.status_code == 200
    assert response.content == b"ok\n"
    assert response["Cache-Control"] == "no-store"


def test_readyz_is_ready_with_the_database_the_broker_and_the_secrets_folder(db, production_like):
    response = Client(**POD).get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"ready": True, "database": "ok", "broker": "ok", "secrets": "ok"}


def test_readyz_fails_while_the_broker_is_unreachable_and_recovers(db, production_like):
    reachable = production_like.CELERY_BROKER_URL
    production_like.CELERY_BROKER_URL = "redis://:a-password@127.0.0.1:9/0"  # nothing listens on port 9
    response = Client(**POD).get("/readyz")
    assert response.status_code == 503
    assert response.json() == {"ready": False, "database": "ok", "broker": "unreachable", "secrets": "ok"}
    assert b"a-password" not in response.content and b"127.0.0.1" not in response.content
    production_like.CELERY_BROKER_URL = reachable
    assert Client(**POD).get("/readyz").status_code == 200


def test_readyz_gives_up_on_a_redis_that_accepts_and_never_answers(db, production_like):
    silent = socket.create_server(("127.0.0.1", 0))  # the kernel accepts; nothing ever replies
    production_like.CELERY_BROKER_URL = f"redis://127.0.0.1:{silent.getsockname()[1]}/0"
    production_like.READINESS_TIMEOUT_SECONDS = 1
    answers = []
    asking = threading.Thread(target=lambda: answers.append(Client(**POD).get("/readyz")), daemon=True)
    asking.start()
    asking.join(120)  # a guard against hanging for ever, not a measurement
    silent.close()
    assert answers, "/readyz hung on a silent Redis"
    assert answers[0].status_code == 503 and answers[0].json()["broker"] == "unreachable"


def test_metrics_token_read_from_a_file_may_end_in_a_newline(client, db, settings):
    settings.METRICS_TOKEN = "from-a-file\n"
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer from-a-file", **POD).status_code == 200


def test_an_idle_connection_does_not_block_a_workers_liveness_port(settings):
    from health.endpoints import serve_ops

    server = serve_ops("127.0.0.1:0")
    idle = socket.create_connection(("127.0.0.1", server.server_address[1]))
    try:
        idle.sendall(b"GET /heal")  # half a request line, and then nothing
        assert urllib.request.urlopen(f"http://127.0.0.1:{server.server_address[1]}/healthz", timeout=30).read() \
            == b"ok\n"
    finally:
        idle.close()
        server.shutdown()


def test_readyz_fails_while_the_secrets_folder_cannot_be_read(db, production_like, tmp_path):
    production_like.SECRETS_DIR = tmp_path / "not-mounted"
    response = Client(**POD).get("/readyz")
    assert response.status_code == 503
    assert response.json()["secrets"] == "unreadable"
    assert b"not-mounted" not in response.content


@pytest.mark.parametrize("method", ["post", "put", "delete"])
def test_the_probes_take_only_get(client, db, method):
    assert getattr(client, method)("/readyz").status_code == 405


def test_a_worker_serves_healthz_and_metrics_on_its_ops_port(settings):
    from health.endpoints import serve_ops

    settings.METRICS_TOKEN = "ops-token"
    server = serve_ops("127.0.0.1:0")
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        assert urllib.request.urlopen(base + "/healthz", timeout=5).read() == b"ok\n"
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(base + "/metrics", timeout=5)
        assert refused.value.code == 401
        request = urllib.request.Request(base + "/metrics", headers={"Authorization": "Bearer ops-token"})
        text = urllib.request.urlopen(request, timeout=5).read().decode()
        assert "ardamail_work_runs" in text and "ardamail_configurations" not in text  # the web's, not here
    finally:
        server.shutdown()


# --- a real gunicorn whose database and broker go away and come back --------------------------


class Relay:
    """A TCP relay on 127.0.0.1 to a real service: `down()` closes it and every connection through it,
    as the service going away would; `up()` listens on the same port again."""

    def __init__(self, target_port: int):
        self.target, self.port, self.running, self.open = target_port, free_port(), False, []

    def up(self):
        self.listener = socket.create_server(("127.0.0.1", self.port))
        self.listener.settimeout(0.1)
        self.running = True
        threading.Thread(target=self._accept, daemon=True).start()

    def down(self):
        self.running = False
        self.listener.close()
        for conn in self.open:
            conn.close()
        self.open.clear()

    def _accept(self):
        while self.running:
            try:
                client, _ = self.listener.accept()
            except (TimeoutError, OSError):
                continue
            upstream = socket.create_connection(("127.0.0.1", self.target))
            self.open += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(source, sink):
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for conn in (source, sink):
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def needs(port: int, what: str):
    if not listening(port):
        if os.environ.get("REQUIRE_SERVICES"):
            pytest.fail(f"REQUIRE_SERVICES is set, but {what} does not listen on 127.0.0.1:{port}")
        pytest.skip(f"{what} does not listen on 127.0.0.1:{port}")


@pytest.fixture
def gunicorn(tmp_path):
    """Start the production web process on given DATABASE_URL and CELERY_BROKER_URL; stopped after."""
    started = []

    def start(database_url: str, broker_url: str) -> str:
        port = free_port()
        (tmp_path / "secret").mkdir(exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "PROMETHEUS_"))}
        env.update(DJANGO_SETTINGS_MODULE="ardamail_admin.settings.production", SECRET_KEY="r" * 60,
                   ALLOWED_HOSTS="ardamail-admin.example.com", PUBLIC_BASE_URL="https://ardamail-admin.example.com",
                   DATABASE_URL=database_url, CELERY_BROKER_URL=broker_url, SECRETS_DIR=str(tmp_path / "secret"),
                   STATIC_ROOT=str(tmp_path), READINESS_TIMEOUT_SECONDS="1", DATABASE_CONNECT_TIMEOUT="2")
        process = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", "deploy/gunicorn.conf.py", "--workers", "1",
                                    "--bind", f"127.0.0.1:{port}"], cwd=django_settings.BASE_DIR, env=env,
                                   stdout=subprocess.DEVNULL, stderr=open(tmp_path / "gunicorn.log", "wb"))
        started.append(process)
        base = f"http://127.0.0.1:{port}"
        wait_for(lambda: get(base + "/healthz")[0] == 200, "gunicorn to start", tmp_path / "gunicorn.log")
        return base

    yield start
    for process in started:
        process.terminate()
        process.wait(timeout=30)


def get(url: str) -> tuple[int, dict | bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            body = answer.read()
            return answer.status, json.loads(body) if url.endswith("/readyz") else body
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())
    except OSError:
        return 0, b""


def wait_for(condition, what: str, log: Path | None = None, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}" + (f":\n{log.read_text()[-3000:]}" if log else ""))
        time.sleep(0.2)


def assert_down_then_up(base: str, relay_or_toggle, check: str, down_word: str = "unreachable"):
    assert get(base + "/readyz") == (200, {"ready": True, "database": "ok", "broker": "ok", "secrets": "ok"})
    relay_or_toggle.down()
    wait_for(lambda: get(base + "/readyz")[0] == 503, f"/readyz to fail without the {check}")
    status, body = get(base + "/readyz")
    assert (status, body[check], body["ready"]) == (503, down_word, False)
    assert get(base + "/healthz")[0] == 200  # alive all along: the kubelet must not restart it
    relay_or_toggle.up()
    wait_for(lambda: get(base + "/readyz")[0] == 200, f"/readyz to recover with the {check} back")


@pytest.mark.slow
def test_readyz_follows_postgresql_going_away_and_coming_back(gunicorn):
    needs(5432, "PostgreSQL")
    needs(6379, "Redis")
    database = Relay(5432)
    database.up()
    try:
        base = gunicorn(f"postgres://postgres@127.0.0.1:{database.port}/postgres", "redis://127.0.0.1:6379/14")
        assert_down_then_up(base, database, "database")
    finally:
        database.down()


@pytest.mark.slow
def test_readyz_follows_redis_going_away_and_coming_back(gunicorn, tmp_path):
    needs(6379, "Redis")
    broker = Relay(6379)
    broker.up()
    try:
        base = gunicorn(f"sqlite:///{tmp_path / 'db.sqlite3'}", f"redis://127.0.0.1:{broker.port}/14")
        assert_down_then_up(base, broker, "broker")
    finally:
        broker.down()


class MovedAway:
    """SQLite's stand-in for a database going away: its folder is renamed, and back."""

    def __init__(self, folder: Path):
        self.folder, self.away = folder, folder.with_name(folder.name + "-away")

    def down(self):
        self.folder.rename(self.away)

    def up(self):
        self.away.rename(self.folder)


@pytest.mark.slow
def test_readyz_follows_an_sqlite_database_going_away_and_coming_back(gunicorn, tmp_path):
    folder = tmp_path / "db"
    folder.mkdir()
    base = gunicorn(f"sqlite:///{folder / 'ardamail.sqlite3'}", "memory://")
    assert_down_then_up(base, MovedAway(folder), "database")
