"""Provider faults, injected at the transport (issue 12's fault matrix, tests/test_resilience_matrix.py).

A `Fault` spoils the next `times` calls of one route: for Postmark an httpx answer or exception in
place of the simulator's (tests.harness.RecordingTransport), for Route53 a botocore answer or
exception in place of moto's (the `before-send` hook tests.harness.make_harness registers). The
code under test sees exactly what a real network would hand it; nothing of it is patched.

What each kind means:

- 429, 500, 503, "502 html" (a proxy's HTML page), "reset" (connection reset before the request
  was read): the provider never saw the request.
- "bad body" (a 200 whose JSON or XML is cut short) and "timeout" (no answer in time): the provider
  did the work; its answer is what got lost. A Route53 timeout spoils only boto's first attempt: boto
  retries it, and the retry meets the change already made (a DELETE of a set already deleted is
  refused, as Route53 does and moto does not). Every other Route53 fault spoils every attempt of the
  call, so that the workflow's own retry is what recovers.
- Throttling, PriorRequestNotComplete, AccessDenied: Route53's own error answers
  (docs/providers/route53.md#throttling).
- "kill before" / "kill after": the worker dies (SimulatedCrash) before the request is sent, or once
  the provider has answered and before the answer is recorded.
"""

import re
from dataclasses import dataclass, field

import httpx
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ConnectionClosedError, ReadTimeoutError
from moto.core.botocore_stubber import MockRawResponse
from moto.core.models import botocore_stubber

HTTP_FAULTS = ("429", "500", "503", "502 html", "bad body", "reset", "timeout")
ROUTE53_FAULTS = ("Throttling", "PriorRequestNotComplete", "AccessDenied")
KILLS = ("kill before", "kill after")
FAULT_KINDS = HTTP_FAULTS + ROUTE53_FAULTS + KILLS
REACHES_PROVIDER = frozenset({"bad body", "timeout", "kill after"})  # the provider did the work

HTML_502 = (b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
            b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n")
NOWHERE = "https://fault-injected.invalid/"  # a URL moto does not serve: the spoiled request goes no further


@dataclass
class Fault:
    route: str  # "POST /servers", "PUT /domains/{id}/verifyDkim", "route53 ChangeResourceRecordSets"
    kind: str
    times: int = 1  # calls spoiled
    fired: int = 0
    _pattern: re.Pattern = field(init=False, repr=False)

    def __post_init__(self):
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault {self.kind!r}")
        self._pattern = re.compile(re.escape(self.route).replace(r"\{id\}", r"\d+") + "$")

    @property
    def kills(self) -> bool:
        return self.kind in KILLS

    def take(self, route: str) -> bool:
        """Whether this fault spoils this call of `route` (and counts it)."""
        if self.fired >= self.times or not self._pattern.match(route):
            return False
        self.fired += 1
        return True


def take_fault(faults: list[Fault], route: str) -> Fault | None:
    return next((fault for fault in faults if fault.take(route)), None)


# --- Postmark (httpx) ---------------------------------------------------------------------------


def postmark_answer(kind: str, request: httpx.Request, answered: httpx.Response | None) -> httpx.Response:
    """What the client gets instead of the simulator's answer (`answered`, when it did the work)."""
    if kind == "429":  # Postmark's rate limit (docs/providers/postmark.md#rate-limits)
        return httpx.Response(429, json={"ErrorCode": 429, "Message": "Rate limit exceeded."})
    if kind in ("500", "503"):
        return httpx.Response(int(kind), json={"ErrorCode": 0, "Message": "Please try again later."})
    if kind == "502 html":
        return httpx.Response(502, content=HTML_502, headers={"Content-Type": "text/html"})
    if kind == "bad body":
        body = answered.content[: max(1, len(answered.content) // 2)]
        return httpx.Response(200, content=body, headers={"Content-Type": "application/json; charset=utf-8"})
    if kind == "reset":
        raise httpx.ConnectError("[Errno 104] Connection reset by peer", request=request)
    if kind == "timeout":
        raise httpx.ReadTimeout("The read operation timed out", request=request)
    raise ValueError(f"{kind!r} is not a Postmark fault")


# --- Route53 (botocore) -------------------------------------------------------------------------


def _aws_error(status: int, code: str, message: str) -> tuple[int, str, bytes]:
    body = (f'<?xml version="1.0"?>\n<ErrorResponse xmlns="https://route53.amazonaws.com/doc/2013-04-01/">'
            f"<Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error>"
            f"<RequestId>f4a1c0de-0000-4000-8000-000000000000</RequestId></ErrorResponse>")
    return status, "text/xml", body.encode()


ROUTE53_ANSWERS = {
    "429": (429, "text/plain", b"Too Many Requests"),
    "500": _aws_error(500, "InternalFailure", "The request processing has failed because of an unknown error."),
    "503": _aws_error(503, "ServiceUnavailable", "The request has failed due to a temporary failure of the server."),
    "502 html": (502, "text/html", HTML_502),
    "Throttling": _aws_error(400, "Throttling", "Rate exceeded"),
    "PriorRequestNotComplete": _aws_error(
        400, "PriorRequestNotComplete", "The request was rejected because Route 53 was still processing a prior "
        "request."),
    "AccessDenied": _aws_error(
        403, "AccessDenied", "User: arn:aws:sts::123456789012:assumed-role/ardamail-dns/ardamail-admin-dns is not "
        "authorized to perform this action on resource: arn:aws:route53:::hostedzone/Z0"),
    "bad body": (200, "text/xml", b'<?xml version="1.0" encoding="UTF-8"?>\n<Response><ChangeInfo><Id>/change/C'),
}


def route53_answer(kind: str, request, *, attempt: int, event_name: str) -> AWSResponse | None:
    """For one attempt of a spoiled Route53 call: a botocore response in place of moto's, an
    exception, or None (the attempt goes through)."""
    if kind == "reset":
        raise ConnectionClosedError(endpoint_url=request.url)
    if kind == "timeout":
        if attempt == 1:
            botocore_stubber(event_name=event_name, request=request)  # moto makes the change ...
            raise ReadTimeoutError(endpoint_url=request.url)  # ... and its answer never arrives
        if b"<Action>DELETE</Action>" not in (request.body or b""):
            return None  # boto's retry goes through (an UPSERT repeats harmlessly)
        # Route53 refuses to DELETE a set that is not there (moto lets it pass): what boto's retry of
        # a DELETE it already made gets (docs/providers/route53.md#change-batches).
        status, content_type, body = _aws_error(400, "InvalidChangeBatch", "[Tried to delete resource record set "
                                                "but it was not found]")
        response = AWSResponse(request.url, status, {"Content-Type": content_type}, MockRawResponse(body))
        request.url = NOWHERE
        return response
    status, content_type, body = ROUTE53_ANSWERS[kind]
    response = AWSResponse(request.url, status, {"Content-Type": content_type}, MockRawResponse(body))
    if kind not in REACHES_PROVIDER:
        request.url = NOWHERE  # moto, next on the same event, must not act on a request that never arrived
    return response
