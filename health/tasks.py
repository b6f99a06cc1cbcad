"""Beat's heartbeat (CELERY_BEAT_SCHEDULE["health-heartbeat"]): thin, like every task."""

from celery import shared_task

from .services import heartbeat_record

HEARTBEAT_TASK = "health.tasks.heartbeat"


@shared_task(bind=True, name=HEARTBEAT_TASK, ignore_result=True)
def heartbeat(self):
    heartbeat_record(worker=self.request.hostname or "")
