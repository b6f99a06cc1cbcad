"""Real concurrency for the race tests on PostgreSQL: actors on threads of their own (so on database
connections of their own), and gates where an actor stops mid-work until the test lets it go on.

Gates go at injection points that exist anyway: right before an SQL statement
(`connection.execute_wrapper`, a supported Django hook), before or after a Postmark request (an
httpx transport around the harness's), or before a Route53 call (a botocore event of the harness's
session). Where one actor must wait for a row lock another holds, `wait_until_blocked` asks
PostgreSQL (`pg_blocking_pids`). Nothing is ordered by sleeping; TIMEOUT only guards a deadlock.
"""

import os
import re
import threading
import time
import uuid
from collections.abc import Callable
from contextlib import ExitStack

import httpx
import pytest
from django.db import connection

from provisioning.dispatch import RUN_WORK
from tenants.lifecycle import ActionRefused
from tests.harness import providers_on

TIMEOUT = 60  # seconds; a deadlock guard only, never a way to order anything


def require_postgresql() -> None:
    """Skip on SQLite, which serialises every writer, unless the run must have its services (CI)."""
    if connection.vendor == "postgresql":
        return
    reason = ("real concurrency needs PostgreSQL (row locks, READ COMMITTED, SKIP LOCKED); SQLite serialises "
              "every writer. Run with DATABASE_URL=postgres://…")
    if os.environ.get("REQUIRE_SERVICES"):
        pytest.fail(f"REQUIRE_SERVICES is set, but the database is {connection.vendor}: {reason}")
    pytest.skip(reason)


class Gate:
    """A point where one actor stops: `wait_reached()` returns once it is there; it goes on once opened."""

    def __init__(self, name: str):
        self.name = name
        self._reached, self._open = threading.Event(), threading.Event()

    def stop_here(self) -> None:
        self._reached.set()
        if not self._open.wait(TIMEOUT):
            raise TimeoutError(f"gate {self.name!r} was never opened")

    def wait_reached(self) -> None:
        assert self._reached.wait(TIMEOUT), f"no actor reached {self.name!r}"

    @property
    def was_reached(self) -> bool:
        return self._reached.is_set()

    def open(self) -> None:
        self._open.set()


# --- right before an SQL statement -------------------------------------------------------------------

SqlMatch = Callable[[str], bool]


def inserting(table: str) -> SqlMatch:
    return lambda sql: sql.startswith(f'INSERT INTO "{table}"')


def updating(table: str) -> SqlMatch:
    return lambda sql: sql.startswith(f'UPDATE "{table}"')


def selecting(table: str) -> SqlMatch:
    return lambda sql: sql.startswith("SELECT") and f'FROM "{table}"' in sql


def stops_before(stops: list[tuple[SqlMatch, Gate]]):
    """An execute_wrapper that stops its connection's thread right before the statements that
    match, in order: the first stop, then (once it was passed) the second, and so on."""
    pending = list(stops)

    def wrapper(execute, sql, params, many, context):
        if pending and pending[0][0](sql):
            pending.pop(0)[1].stop_here()
        return execute(sql, params, many, context)

    return wrapper


# --- around a Postmark request, before a Route53 call ------------------------------------------------


class StopAt(httpx.BaseTransport):
    """Stops the thread sending the first request whose "METHOD /path" matches `route` (a regular
    expression) at `gate`: before the request is sent, or once its answer has arrived."""

    def __init__(self, inner: httpx.BaseTransport, route: str, gate: Gate, *, when: str = "before"):
        self.inner, self.route, self.gate, self.when = inner, route, gate, when

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        hit = not self.gate.was_reached and re.fullmatch(self.route, f"{request.method} {request.url.path}")
        if hit and self.when == "before":
            self.gate.stop_here()
        response = self.inner.handle_request(request)
        if hit and self.when == "after":
            response.read()
            self.gate.stop_here()
        return response


def providers_stopping_at(harness, route: str, gate: Gate, *, when: str = "before"):
    """The harness's providers, whose Postmark requests stop at `gate` at the first `route`."""
    return providers_on(StopAt(harness.transport, route, gate, when=when), harness.providers.dns_for)


def stop_at_route53(harness, gate: Gate, *, thread: str, operation: str = "*") -> None:
    """Stops the thread named `thread` right before its first Route53 `operation`; others pass."""

    def before_call(**kwargs):
        if threading.current_thread().name == thread and not gate.was_reached:
            gate.stop_here()
        # None: a before-call handler that returned something would stand for the answer

    harness.session._session.get_component("event_emitter").register(f"before-call.route53.{operation}", before_call)


# --- actors -----------------------------------------------------------------------------------------


class InThread:
    """One actor: `action` on a thread of its own, so on a database connection of its own."""

    def __init__(self, name: str, action: Callable[[], object], stops: list[tuple[SqlMatch, Gate]] = ()):
        self.name, self.action, self.stops = name, action, list(stops)
        self.pid: int | None = None  # its PostgreSQL backend
        self.value, self.error = None, None
        self.connected = threading.Event()
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)

    def _run(self) -> None:
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_backend_pid()")
                self.pid = cursor.fetchone()[0]
            self.connected.set()
            with ExitStack() as stack:
                if self.stops:
                    stack.enter_context(connection.execute_wrapper(stops_before(self.stops)))
                self.value = self.action()
        except BaseException as exc:  # handed to the test's thread by result()
            self.error = exc
        finally:
            self.connected.set()
            connection.close()  # else the test database could not be flushed or dropped

    def start(self) -> "InThread":
        self.thread.start()
        assert self.connected.wait(TIMEOUT)
        return self

    def result(self):
        self.thread.join(TIMEOUT)
        assert not self.thread.is_alive(), f"{self.name} is still running"
        if self.error is not None:
            raise self.error
        return self.value

    def refusal(self) -> str:
        """The sentence the actor was refused with (a refusal of the action, not of the role)."""
        with pytest.raises(ActionRefused) as refused:
            self.result()
        assert not refused.value.forbidden
        return refused.value.message


class Race:
    """The gates and actors of one test; `close()` opens every gate and waits for every actor, so no
    thread is left holding a lock or a connection when the test database is flushed, even after a
    failure."""

    def __init__(self):
        self.gates: list[Gate] = []
        self.actors: list[InThread] = []

    def gate(self, name: str) -> Gate:
        self.gates.append(Gate(name))
        return self.gates[-1]

    def start(self, name: str, action: Callable[[], object], stops: list[tuple[SqlMatch, Gate]] = ()) -> InThread:
        """Start an actor; `name` is its thread's name (stop_at_route53 picks a thread by it)."""
        self.actors.append(InThread(name, action, stops))
        return self.actors[-1].start()

    def close(self) -> None:
        for gate in self.gates:
            gate.open()
        for actor in self.actors:
            actor.thread.join(TIMEOUT)


def wait_until_blocked(waiter: InThread, holder: InThread) -> None:
    """Until PostgreSQL reports that `waiter`'s statement waits for a lock `holder`'s transaction
    holds. (The loop polls what the database reports; it orders nothing by time.)"""
    deadline = time.monotonic() + TIMEOUT
    with connection.cursor() as cursor:
        while True:
            cursor.execute("SELECT pg_blocking_pids(%s)", [waiter.pid])
            if holder.pid in cursor.fetchone()[0]:
                return
            assert waiter.thread.is_alive(), f"{waiter.name} ended without waiting for {holder.name}"
            assert time.monotonic() < deadline, f"{waiter.name} never waited for {holder.name}"
            time.sleep(0.005)


# --- the queue ----------------------------------------------------------------------------------------


def work_off(sent, providers, *, start: int = 0) -> list[str]:
    """Run the queued messages `sent` (tests.harness.published_tasks) from `start` on, as the worker
    does (provisioning.tasks.run_work, on these providers), and those they queue in turn, on this
    thread; returns how each ended ("provision: finished")."""
    from provisioning.tasks import HANDLERS

    outcomes, i = [], start
    while i < len(sent):
        message, i = sent[i], i + 1
        assert message.task == RUN_WORK, message
        configuration_id, work, token, trigger = message.args
        outcome = HANDLERS[work](configuration_id=configuration_id, providers=providers, token=uuid.UUID(token),
                                 trigger=trigger or "schedule")
        while outcome.retry_in is not None:  # Celery's retry, with the hold's current token
            outcome = HANDLERS[work](configuration_id=configuration_id, providers=providers, token=outcome.token,
                                     trigger=trigger or "schedule")
        outcomes.append(f"{work}: {outcome.state}")
    return outcomes
