"""Amazon SES (API v2) as an email provider, in one or more regions.

- `client.py`: the only place boto3 is called for SES; timeouts, retries, role credentials, errors.
- `provider.py`: `Ses`, the operations: identities, configuration sets, tenants, sending, verification.
- `records.py`: the DNS records SES needs (DKIM CNAMEs per region, one MAIL FROM MX and SPF), no I/O.
- `verification.py`: SES's statuses per region in a sentence, and `all_verified`, no I/O.

The SES behaviour relied on is written down, with its sources, in docs/providers/ses.md (cited as #anchors).
"""

from .client import PROVIDER, SesClients
from .provider import (
    DEFAULT_REGIONS,
    EVENT_DESTINATION_NAME,
    Ses,
    configuration_set_arn,
    identity_arn,
)
from .records import desired_records, feedback_host
from .results import (
    EVENT_TYPES,
    ConfigurationSetSetup,
    EventTarget,
    IdentitySetup,
    RegionVerification,
    TenantAssociation,
)
from .verification import all_verified

__all__ = [
    "DEFAULT_REGIONS", "EVENT_DESTINATION_NAME", "EVENT_TYPES", "PROVIDER", "ConfigurationSetSetup", "EventTarget",
    "IdentitySetup", "RegionVerification", "Ses", "SesClients", "TenantAssociation", "all_verified",
    "configuration_set_arn", "desired_records", "feedback_host", "identity_arn",
]
