"""The platform's own endpoints: /healthz, /readyz and /metrics, no login.

- /healthz: the process answers (no database, no broker): the liveness probe.
- /readyz: the database and the broker can be reached and the secrets folder read (health.probes);
  200 or 503, with one word per check and nothing else: the readiness probe.
- /metrics: Prometheus' text format, only with `Authorization: Bearer <METRICS_TOKEN>`; 404 while
  METRICS_TOKEN is unset, so an ingress that forwards every path exposes nothing by accident.

`OpsEndpointsMiddleware` answers them first in MIDDLEWARE, before anything else looks at the request:
the kubelet and Prometheus call the pod's own address (a Host that ALLOWED_HOSTS rightly refuses)
over plain HTTP (which SECURE_SSL_REDIRECT would send to https), with no session. A worker or beat
serves the same /healthz and /metrics on OPS_LISTEN (`serve_ops`, started by health.worker).
"""

import hmac
import logging
import os
import threading
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from django.conf import settings
from django.http import HttpResponse, HttpResponseNotAllowed, JsonResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    generate_latest,
    multiprocess,
)

from . import probes
from .collector import StoredStateCollector

log = logging.getLogger("health.endpoints")
NOT_FOUND = b"Not found.\n"


def metrics_allowed(authorization: str) -> bool | None:
    """None: metrics are off (no METRICS_TOKEN); else whether the header carries the token."""
    token = settings.METRICS_TOKEN.strip()  # a secret read from a file may end in a newline
    if not token:
        return None
    scheme, _, given = authorization.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


def exposition(*, stored_state: bool) -> bytes:
    """Every metric of this process, or of all its siblings in multiprocess mode (gunicorn workers,
    Celery's prefork children: PROMETHEUS_MULTIPROC_DIR), plus the stored-state gauges if asked."""
    registry = CollectorRegistry(auto_describe=False)
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.MultiProcessCollector(registry)
    else:
        registry.register(_Everything())
    if stored_state:
        registry.register(StoredStateCollector())
    return generate_latest(registry)


class _Everything:
    """The default registry (this process's counters and its process_/python_ metrics) as one collector."""

    def collect(self):
        return REGISTRY.collect()


# --- the web: a middleware ---------------------------------------------------------------------


def healthz(request) -> HttpResponse:
    return HttpResponse(b"ok\n", content_type="text/plain")


def readyz(request) -> JsonResponse:
    found = probes.readiness()
    return JsonResponse({"ready": found.ready, **found.checks}, status=200 if found.ready else 503)


def metrics(request) -> HttpResponse:
    allowed = metrics_allowed(request.headers.get("Authorization", ""))
    if allowed is None:
        return HttpResponse(NOT_FOUND, status=404, content_type="text/plain")
    if not allowed:
        response = HttpResponse(b"A bearer token is required.\n", status=401, content_type="text/plain")
        response["WWW-Authenticate"] = 'Bearer realm="ardamail metrics"'
        return response
    return HttpResponse(exposition(stored_state=True), content_type=CONTENT_TYPE_LATEST)


ENDPOINTS = {"/healthz": healthz, "/readyz": readyz, "/metrics": metrics}


class OpsEndpointsMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        view = ENDPOINTS.get(request.path_info)
        if view is None:
            return self.get_response(request)
        if request.method not in ("GET", "HEAD"):
            return HttpResponseNotAllowed(["GET", "HEAD"])
        response = view(request)
        response["Cache-Control"] = "no-store"
        return response


# --- a worker or beat: a small server of its own -------------------------------------------------


def ops_app(environ, start_response):
    """WSGI: /healthz and /metrics (this process's and its children's counters; no stored state,
    which the web's /metrics gives once)."""
    path = environ.get("PATH_INFO", "")
    if path == "/healthz":
        return _answer(start_response, "200 OK", b"ok\n")
    if path == "/metrics":
        allowed = metrics_allowed(environ.get("HTTP_AUTHORIZATION", ""))
        if allowed:
            return _answer(start_response, "200 OK", exposition(stored_state=False), CONTENT_TYPE_LATEST)
        if allowed is False:
            return _answer(start_response, "401 Unauthorized", b"A bearer token is required.\n",
                           extra=[("WWW-Authenticate", 'Bearer realm="ardamail metrics"')])
    return _answer(start_response, "404 Not Found", NOT_FOUND)


def _answer(start_response, status: str, body: bytes, content_type: str = "text/plain", extra=()):
    start_response(status, [("Content-Type", content_type), ("Content-Length", str(len(body))),
                            ("Cache-Control", "no-store"), *extra])
    return [body]


class _QuietHandler(WSGIRequestHandler):
    timeout = 5  # seconds a connection may take to send its request: an idle one is dropped

    def log_message(self, format, *args):  # a probe every few seconds is not news
        pass


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    """One thread per connection, so one slow or idle client never blocks the liveness probe."""

    daemon_threads = True


def serve_ops(listen: str) -> WSGIServer:
    """Serve `ops_app` on "host:port" in a daemon thread; returns the server (`.server_address`)."""
    host, _, port = listen.rpartition(":")
    server = make_server(host or "127.0.0.1", int(port), ops_app, server_class=_ThreadingServer,
                         handler_class=_QuietHandler)
    threading.Thread(target=server.serve_forever, name="ardamail-ops", daemon=True).start()
    log.info("serving /healthz and /metrics on %s:%s", *server.server_address[:2])
    return server
