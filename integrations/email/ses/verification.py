"""How far SES has got with a domain in each region, in SES's statuses and in a sentence. No I/O.

A domain identity is verified by its DKIM CNAMEs (#dkim-records); `VerificationInfo.ErrorType` says
why SES's last look at them failed (#statuses). The MAIL FROM status is about the MX record alone.
"""

from collections.abc import Iterable

from .results import RegionVerification

# VerificationInfo.ErrorType (#statuses), said about the DKIM CNAMEs a domain identity is verified by.
ERROR_REASONS = {
    "TYPE_NOT_FOUND": "the CNAME records were not found",
    "HOST_NOT_FOUND": "the DKIM names do not exist in DNS",
    "INVALID_VALUE": "the DKIM names hold values other than the ones SES gave",
    "DNS_SERVER_ERROR": "the domain's name servers did not answer SES",
    "SERVICE_ERROR": "SES had a temporary problem and will look again",
    "REPLICATION_ACCESS_DENIED": "SES may not copy the DKIM settings of the parent identity",
    "REPLICATION_PRIMARY_NOT_FOUND": "the parent identity to copy DKIM settings from was not found",
    "REPLICATION_PRIMARY_BYO_DKIM_NOT_SUPPORTED": "the parent identity uses its own DKIM key, which cannot be copied",
    "REPLICATION_REPLICA_AS_PRIMARY_NOT_SUPPORTED": "the parent identity is itself a copy",
    "REPLICATION_PRIMARY_INVALID_REGION": "the parent identity is in a region that cannot be copied from",
}
# MailFromAttributes.MailFromDomainStatus other than SUCCESS (#mail-from-states).
MAIL_FROM_REASONS = {
    "PENDING": "SES has not found the MX record at {name} yet",
    "FAILED": "SES stopped looking for the MX record at {name}; provisioning sets the MAIL FROM domain again",
    "TEMPORARY_FAILURE": "SES could not read the MX record at {name} and keeps trying",
}


def not_found(region: str, domain: str) -> RegionVerification:
    return RegionVerification(region=region, found=False, verification_status="", verified_for_sending=False,
                              dkim_status="", mail_from_domain="", mail_from_status="", error_type="",
                              last_checked=None, reason=f"{region}: SES has no identity for {domain} in this region")


def region_verification(region: str, answer: dict) -> RegionVerification:
    """One region's state from its GetEmailIdentity answer."""
    dkim_status = answer.get("DkimAttributes", {}).get("Status", "")
    mail_from = answer.get("MailFromAttributes", {})
    info = answer.get("VerificationInfo", {})
    values = dict(region=region, found=True, verification_status=answer.get("VerificationStatus", ""),
                  verified_for_sending=bool(answer.get("VerifiedForSendingStatus")), dkim_status=dkim_status,
                  mail_from_domain=mail_from.get("MailFromDomain", ""),
                  mail_from_status=mail_from.get("MailFromDomainStatus", ""),
                  error_type=info.get("ErrorType", ""), last_checked=info.get("LastCheckedTimestamp"))
    return RegionVerification(**values, reason=_reason(**values))


def _reason(*, region: str, dkim_status: str, error_type: str, mail_from_domain: str, mail_from_status: str,
            **_) -> str:
    problems = []
    if dkim_status != "SUCCESS":
        why = f" ({error_type}: {ERROR_REASONS.get(error_type, 'no reason given')})" if error_type else ""
        problems.append(f"DKIM {dkim_status or 'NOT_STARTED'}{why}")
    if not mail_from_domain:
        problems.append("MAIL FROM not set up")
    elif mail_from_status != "SUCCESS":
        why = MAIL_FROM_REASONS.get(mail_from_status, "SES gave no details").format(name=mail_from_domain)
        problems.append(f"MAIL FROM {mail_from_status or 'NOT_STARTED'} ({why})")
    return f"{region}: " + ("; ".join(problems) if problems else "verified (DKIM and MAIL FROM found)")


def all_verified(verifications: dict[str, RegionVerification] | Iterable[RegionVerification]) -> bool:
    """Every region's DKIM and MAIL FROM found (and at least one region asked)."""
    values = list(verifications.values() if isinstance(verifications, dict) else verifications)
    return bool(values) and all(v.verified for v in values)
