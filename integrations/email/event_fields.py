"""The checks every provider's event parser makes on a field, so Postmark's and SES's refuse the same
things with the same sentences. `label` names the field as the provider's payload does ("Details",
"mail.source"); no I/O."""

from datetime import UTC, datetime, timedelta

from . import EventRejected

MAX_TEXT = 2000  # descriptions and SMTP answers are kept this long at most
MAX_KEY = 450  # events.DeliveryEvent.key
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
MAX_CLOCK_SKEW = timedelta(days=1)  # an event time further ahead than this is not believed


def text(value: object, label: str, *, required: bool = False, limit: int = MAX_TEXT) -> str:
    """A string field, stripped and cut to `limit` ("" when absent or blank, unless required)."""
    if isinstance(value, str):
        value = value.strip()
    if value is None or value == "":
        if required:
            raise EventRejected(f"{label} is missing.")
        return ""
    if not isinstance(value, str):
        raise EventRejected(f"{label} must be a string.")
    if "\x00" in value:
        raise EventRejected(f"{label} contains a NUL character.")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise EventRejected(f"{label} is not valid Unicode text (it holds a lone surrogate).") from None
    return value[:limit]


def short(value: object, label: str, limit: int, *, required: bool = False) -> str:
    """A string field refused, not cut, when longer than `limit` (ids, addresses, times)."""
    checked = text(value, label, required=required, limit=10_000)
    if len(checked) > limit:
        raise EventRejected(f"{label} is longer than {limit} characters.")
    return checked


def moment(value: object, label: str) -> datetime:
    """An ISO 8601 time, in UTC, that an event can have happened at."""
    written = short(value, label, 64, required=True)
    try:
        parsed = datetime.fromisoformat(written)
    except ValueError:
        raise EventRejected(f"{label} is not an ISO 8601 time: {written!r}.") from None
    try:
        parsed = (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)
    except OverflowError:  # year 1 or 9999 moved across an offset
        parsed = None
    if parsed is None or not EARLIEST <= parsed <= datetime.now(UTC) + MAX_CLOCK_SKEW:
        raise EventRejected(f"{label} {written!r} is not a time an event can have happened.")
    return parsed
