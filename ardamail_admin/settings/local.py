"""Local mode: SQLite, filesystem broker, simulated providers (see `make run`).

`manage.py run_local` serves a moto Route53 on LOCAL_MOTO_PORT, the Postmark simulator on
LOCAL_POSTMARK_PORT, the SES v2 simulator on LOCAL_SES_PORT and the Cloudflare simulator on
LOCAL_CLOUDFLARE_PORT; the defaults below point every process (web, worker, commands) at them.
Set POSTMARK_API_URL / AWS_ENDPOINT_URL / SES_ENDPOINT_URL / CLOUDFLARE_API_URL (and real
credentials) to go live instead.
"""

import os

from .base import *  # noqa: F403
from .base import VAR_DIR, env

DEBUG = env.bool("DEBUG", default=True)
SECRETS_DIR = env.path("SECRETS_DIR", default=VAR_DIR / "secrets")

LOCAL_MOTO_PORT = env.int("LOCAL_MOTO_PORT", default=8001)
LOCAL_POSTMARK_PORT = env.int("LOCAL_POSTMARK_PORT", default=8002)
POSTMARK_API_URL = env("POSTMARK_API_URL", default=f"http://127.0.0.1:{LOCAL_POSTMARK_PORT}")
AWS_ENDPOINT_URL = env("AWS_ENDPOINT_URL", default=f"http://127.0.0.1:{LOCAL_MOTO_PORT}")
LOCAL_SES_PORT = env.int("LOCAL_SES_PORT", default=8003)
LOCAL_CLOUDFLARE_PORT = env.int("LOCAL_CLOUDFLARE_PORT", default=8004)
# Regions whose DKIM the SES simulator fails at once, to see one region fail while another passes.
LOCAL_SES_FAIL_DKIM_REGIONS = env.list("LOCAL_SES_FAIL_DKIM_REGIONS", default=[])
SES_ENDPOINT_URL = env("SES_ENDPOINT_URL", default=f"http://127.0.0.1:{LOCAL_SES_PORT}")
SES_ACCOUNT_ID = env("SES_ACCOUNT_ID", default="123456789012")  # the simulator's; it has no STS to ask
# No SNS here to carry SES's events to the dashboard: none are configured, and the pages say so.
# (Set it, e.g. arn:aws:sns:{region}:{account}:ardamail-{partition}-events, to see the simulator
# check event destinations; nothing will deliver the events locally.)
SES_EVENT_TOPIC_ARN = env("SES_EVENT_TOPIC_ARN", default="")
CLOUDFLARE_API_URL = env("CLOUDFLARE_API_URL", default=f"http://127.0.0.1:{LOCAL_CLOUDFLARE_PORT}/client/v4")
CLOUDFLARE_ACCOUNT_ID = env("CLOUDFLARE_ACCOUNT_ID", default="0" * 31 + "1")  # the simulator's account
if AWS_ENDPOINT_URL.startswith("http://127.0.0.1"):
    # moto accepts any credentials, but boto3 refuses to sign without some.
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "local")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "local")

# A DKIM rotation's later steps come on the configuration's checks: look every minute locally, so the
# simulator's "safe to remove the old key" (two minutes after the new key is active) is seen soon.
DKIM_ROTATION_CHECK_MINUTES = env.float("DKIM_ROTATION_CHECK_MINUTES", default=1.0)
