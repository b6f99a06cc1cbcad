"""The one error type every provider package raises.

Its message is written for a support person ("Postmark could not create the server: This server
name already exists. (HTTP 422, ErrorCode 603)") and it says whether retrying can help.
It never carries a token: packages build the message from the provider's answer, not the request.
"""


class ProviderError(Exception):
    def __init__(
        self,
        message: str,
        *,
        provider: str,
        transient: bool,
        status: int | None = None,
        error_code: int | str | None = None,
        provider_message: str = "",
        not_found: bool = False,
    ):
        super().__init__(message)
        self.message = message
        self.provider = provider  # "postmark" | "route53" | …
        self.transient = transient  # True: retrying later may succeed (429, 5xx, timeouts, throttling)
        self.status = status  # HTTP status, when there was a response
        self.error_code = error_code  # the provider's own error code (Postmark int, AWS string)
        self.provider_message = provider_message  # the provider's own message, verbatim
        self.not_found = not_found  # the object asked about does not exist (deleting it is done)

    def __str__(self):
        return self.message


class DnsNameOutsideZone(ProviderError):
    """Refused before any call: a record name not inside the partition zone at a label boundary."""

    def __init__(self, name: str, zone: str):
        super().__init__(f"Refusing to write {name}: it is not inside the zone {zone}.", provider="dns", transient=False)
        self.name = name
        self.zone = zone
