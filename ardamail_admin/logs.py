"""Log lines: JSON in production (LOG_FORMAT=json, one event per line), plain text locally.

A piece of background work binds what it is about (`bind`: the task id, the kind of work, the run's
hold token as `run_id`, the configuration's id and sending domain) and every line logged until it is
unbound carries those fields (`ContextFilter`, on the handler, so lines from every logger get them).
The messages themselves never hold a secret: the provider errors are built without tokens
(integrations.errors) and the webhook receiver never logs its credential; nothing here adds one.
This module imports nothing of the project, so any layer may bind.
"""

import contextvars
import logging

from pythonjsonlogger.json import JsonFormatter

_fields: contextvars.ContextVar[dict] = contextvars.ContextVar("ardamail_log_fields", default={})


def bind(**fields) -> contextvars.Token:
    """Add fields to every line logged from here on (in this thread or task); empty values are left out."""
    return _fields.set({**_fields.get(), **{k: v for k, v in fields.items() if v not in (None, "")}})


def unbind(token: contextvars.Token | None = None) -> None:
    """Forget what `bind` returned `token` for (None: everything)."""
    if token is None:
        _fields.set({})
    else:
        _fields.reset(token)


def bound() -> dict:
    return dict(_fields.get())


class ContextFilter(logging.Filter):
    """Copies the bound fields onto each record (a field the call itself passed in `extra` wins)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, value in _fields.get().items():
            if not hasattr(record, name):
                setattr(record, name, value)
        return True


class QuietProbes(logging.Filter):
    """Leaves gunicorn's access lines for /healthz, /readyz and /metrics out: the kubelet and
    Prometheus ask every few seconds, and those lines would bury the requests people make."""

    PATHS = frozenset({"/healthz", "/readyz", "/metrics"})

    def filter(self, record: logging.LogRecord) -> bool:
        return not (isinstance(record.args, dict) and record.args.get("U") in self.PATHS)


class JsonLines(JsonFormatter):
    """`{"time": …, "level": "INFO", "logger": …, "message": …, "process": …, <bound fields>, <extra>}`."""

    def __init__(self, **kwargs):
        kwargs.setdefault("rename_fields", {"levelname": "level", "name": "logger"})
        kwargs.setdefault("timestamp", "time")
        super().__init__(["levelname", "name", "message", "process"], **kwargs)


class PlainWithContext(logging.Formatter):
    """Local mode's plain lines, with the bound fields appended as `key=value`."""

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extra = " ".join(f"{name}={getattr(record, name)}" for name in _fields.get() if hasattr(record, name))
        return f"{line} [{extra}]" if extra else line
