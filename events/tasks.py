"""The beat's roll-up of delivery events into the counts the partition overview sorts by."""

from celery import shared_task

from .stats import roll_up as _roll_up


@shared_task(name="events.tasks.roll_up", ignore_result=True)
def roll_up():
    return _roll_up()
