"""Celery tasks: thin, like views. Load by id, call a service, let Celery schedule the retry."""

import uuid

from celery import shared_task

from .providers import Providers
from .services import configuration_provision


@shared_task(bind=True, acks_late=True, max_retries=None)
def provision_configuration(self, configuration_id: int, run_id: str | None = None):
    outcome = configuration_provision(
        configuration_id=configuration_id,
        providers=Providers.default(),
        run_id=uuid.UUID(run_id) if run_id else None,
    )
    if outcome.state == "retry":
        # The step's attempt count (on the row) bounds the retries, not Celery's max_retries.
        raise self.retry(countdown=outcome.retry_in, kwargs={"configuration_id": configuration_id, "run_id": str(outcome.run_id)})
    return outcome.state
