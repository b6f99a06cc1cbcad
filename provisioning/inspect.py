"""Read-only views of a configuration for the status command and the dashboard."""

from dataclasses import asdict, dataclass

from tenants.models import EmailConfiguration

from .desired import desired_for
from .errors import ProviderError
from .providers import Providers
from .records import DnsRecord
from .steps import zone_id


@dataclass
class RecordState:
    record: DnsRecord
    published: bool | None  # None: Route53 could not be read
    found: list[str]


def record_states(configuration: EmailConfiguration, providers: Providers) -> tuple[list[RecordState], str]:
    """Desired records with what Route53 holds for each; the string is a read error, if any."""
    desired = desired_for(configuration)
    partition = configuration.partition
    try:
        client = providers.route53_for(partition)
        current = client.read(
            zone_id=zone_id(configuration, providers), zone_name=partition.mail_zone, names={r.name for r in desired}
        )
    except ProviderError as exc:
        return [RecordState(r, None, []) for r in desired], exc.message
    by_key: dict[tuple[str, str], list[str]] = {}
    for record in current:
        by_key.setdefault(record.key, []).append(record.value)
    states = [RecordState(r, r.value in by_key.get(r.key, []), by_key.get(r.key, [])) for r in desired]
    return states, ""


def status_document(configuration: EmailConfiguration, providers: Providers) -> dict:
    states, read_error = record_states(configuration, providers)
    return {
        "sending_domain": configuration.sending_domain,
        "from": configuration.from_address,
        "partition": configuration.partition.name,
        "tenant": configuration.tenant.slug,
        "status": configuration.status,
        "last_error": configuration.last_error,
        "dmarc_state": configuration.dmarc_state,
        "postmark": {
            "server_id": configuration.postmark_server_id,
            "domain_id": configuration.postmark_domain_id,
            "webhook_id": configuration.postmark_webhook_id,
            "server_token_stored": configuration.has_server_token,
        },
        "verification": {
            "dkim_verified": configuration.dkim_verified,
            "return_path_verified": configuration.return_path_verified,
            "checked_at": configuration.verification_checked_at.isoformat() if configuration.verification_checked_at else None,
        },
        "steps": [
            {
                "name": s.name, "status": s.status, "attempts": s.attempts, "last_error": s.last_error,
                "started_at": s.started_at.isoformat() if s.started_at else None,
                "finished_at": s.finished_at.isoformat() if s.finished_at else None,
            }
            for s in configuration.steps.all()
        ],
        "records": [{**asdict(s.record), "published": s.published, "found": s.found} for s in states],
        "records_error": read_error,
    }
