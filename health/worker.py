"""What a Celery worker or beat process does for operations, through Celery's signals (connected
when Django loads the health app, so only processes that run Celery ever receive them):

- its /healthz and /metrics on OPS_LISTEN (health.endpoints.serve_ops), when set;
- a fresh PROMETHEUS_MULTIPROC_DIR at worker start (the counters of a previous run in the same
  container would otherwise be added to this run's);
- each task's log lines carry its task id and, for `run_work`, the kind of work, the run (the
  hold's token the message carries), the configuration id and its sending domain (ardamail_admin.logs).
"""

import logging

from celery import signals
from django.conf import settings
from django.db import DatabaseError

from ardamail_admin import logs, metrics
from tenants.models import EmailConfiguration

from .endpoints import serve_ops

log = logging.getLogger("health.worker")
RUN_WORK = "provisioning.tasks.run_work"  # its arguments: configuration_id, work, token[, trigger]


@signals.worker_init.connect(dispatch_uid="ardamail-ops-worker-init")
def _worker_init(**kwargs) -> None:
    metrics.clear_multiprocess_dir()  # in the main process, before the pool forks its children


@signals.worker_ready.connect(dispatch_uid="ardamail-ops-worker-ready")
@signals.beat_init.connect(dispatch_uid="ardamail-ops-beat-init")
def _start_ops_server(**kwargs) -> None:
    if settings.OPS_LISTEN:
        serve_ops(settings.OPS_LISTEN)


@signals.task_prerun.connect(dispatch_uid="ardamail-log-context")
def _bind_task(task_id=None, task=None, args=(), kwargs=None, **extra) -> None:
    fields = {"task_id": task_id, "task": getattr(task, "name", None)}
    if fields["task"] == RUN_WORK and len(args) >= 3:
        configuration_id, work, token = args[:3]
        fields.update(work=work, run_id=token, configuration_id=configuration_id,
                      configuration_domain=_domain(configuration_id))
    logs.unbind()
    logs.bind(**fields)


@signals.task_postrun.connect(dispatch_uid="ardamail-log-context-end")
def _unbind_task(**kwargs) -> None:
    logs.unbind()


def _domain(configuration_id) -> str | None:
    """The sending domain, for the log lines only: a lookup that fails leaves it out, never the task."""
    try:
        return EmailConfiguration.objects.filter(pk=configuration_id).values_list("sending_domain", flat=True).first()
    except (DatabaseError, ValueError, TypeError):
        return None
