"""What every AWS package here shares (Route53, SES): turning what botocore leaves after its own
retries into one ProviderError that says what failed and whether retrying can help."""

from collections.abc import Iterator
from contextlib import contextmanager

from botocore.exceptions import (
    ClientError,
    ConnectionError,
    ConnectTimeoutError,
    HTTPClientError,
    NoCredentialsError,
    ReadTimeoutError,
)
from botocore.parsers import ResponseParserError

from integrations.errors import ProviderError

# The error_code of a call that got no answer within the client's timeouts (no AWS code exists for
# that): the health checks tell a provider that hangs from one that refuses by it.
TIMED_OUT = "timeout"


@contextmanager
def translated_errors(where: str, operation: str, *, provider: str, transient_codes: frozenset[str],
                      not_found_codes: frozenset[str] = frozenset(), answer_format: str = "a valid answer"
                      ) -> Iterator[None]:
    """Run boto calls; `where` names the service ("Route53", "SES us-west-2", "AWS STS") and
    `operation` finishes the sentence "… could not <operation>"."""
    try:
        yield
    except ClientError as exc:
        raise client_error(exc, where, operation, provider=provider, transient_codes=transient_codes,
                           not_found_codes=not_found_codes) from exc
    except (ConnectTimeoutError, ReadTimeoutError) as exc:  # before their base classes just below
        raise ProviderError(f"{where} did not answer in time while trying to {operation}", provider=provider,
                            transient=True, error_code=TIMED_OUT) from exc
    except (ConnectionError, HTTPClientError) as exc:  # refused, DNS, connect/read timeouts, resets
        raise ProviderError(f"Could not reach {where} to {operation}", provider=provider, transient=True) from exc
    except ResponseParserError as exc:
        # A 200 whose body is cut short (a proxy, a dropped connection): the change may have been made,
        # and a person's retry finds it (every write converges).
        raise ProviderError(f"{where} answered with something other than {answer_format} while trying to "
                            f"{operation}", provider=provider, transient=False) from exc
    except NoCredentialsError as exc:
        raise ProviderError(
            f"{where} could not {operation}: this worker has no AWS credentials "
            "(no environment keys, profile or IAM role were found).",
            provider=provider, transient=False,
        ) from exc


def client_error(exc: ClientError, where: str, operation: str, *, provider: str, transient_codes: frozenset[str],
                 not_found_codes: frozenset[str] = frozenset()) -> ProviderError:
    error = exc.response.get("Error", {})
    code = error.get("Code") or "Unknown"
    message = error.get("Message") or "no details given"
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return ProviderError(
        f"{where} could not {operation}: {message} ({code})",
        provider=provider,
        # 429 (a proxy's, or a throttle without an AWS code) is not retried by boto, but waiting helps.
        transient=code in transient_codes or status == 429 or (status or 0) >= 500,
        status=status,
        error_code=code,
        provider_message=error.get("Message", ""),
        not_found=code in not_found_codes,
    )
