"""When the next automatic check of a configuration is due (its `due_at`): jittered intervals.

Jitter spreads thousands of configurations onboarded in one batch apart, so they do not all poll
in step. The sweep that starts due work is provisioning.dispatch.
"""

import random
from datetime import timedelta

from django.conf import settings

JITTER = 0.10  # ±10 %
# Minutes to wait after the 1st, 2nd, … verification check; the last value repeats.
VERIFICATION_MINUTES = (1, 2, 5, 10, 30, 60)
DNS_CHECK_RETRY = timedelta(minutes=5)  # a DNS check the provider could not answer is tried again


def jittered(interval: timedelta) -> timedelta:
    return interval * random.uniform(1 - JITTER, 1 + JITTER)


def next_check_delay(attempts: int) -> timedelta:
    """Jittered wait after the `attempts`-th verification check (1-based)."""
    index = min(max(attempts, 1), len(VERIFICATION_MINUTES)) - 1
    return jittered(timedelta(minutes=VERIFICATION_MINUTES[index]))


def drift_interval() -> timedelta:
    return jittered(timedelta(hours=settings.DRIFT_INTERVAL_HOURS))
