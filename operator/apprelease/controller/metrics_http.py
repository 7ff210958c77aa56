"""The little HTTP/1.1 the metrics endpoint speaks: one bounded request head in, one response head out.

Pure functions (no I/O), so that every refusal is a unit test. The server (`metrics_server`) reads at most
`MAX_HEAD_BYTES` before it calls `parse_head`; anything outside this small subset of RFC 9112 is refused with the
status a general-purpose server would send, and the connection is closed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_HEAD_BYTES = 8192  # request line and header fields together (nginx's large_client_header_buffers: 8k)
MAX_HEADER_LINES = 32  # Prometheus sends 5 or 6; curl 3
HEAD_END = b"\r\n\r\n"

_TOKEN = re.compile(rb"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")  # RFC 9110 field-name / method token
_REQUEST_LINE = re.compile(rb"^([!#$%&'*+\-.^_`|~0-9A-Za-z]+) (\S+) HTTP/1\.([01])$")
_FIELD_VALUE_BAD = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")  # controls other than HTAB

REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    413: "Content Too Large",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


@dataclass(frozen=True)
class Request:
    """A parsed request head. `headers` keys are lower-case field names; repeated fields are joined with ", "."""

    method: str
    path: str  # the target without its query
    minor_version: int  # HTTP/1.<minor>
    headers: dict[str, str]

    @property
    def keep_alive(self) -> bool:
        """RFC 9112 9.3: HTTP/1.1 persists unless `Connection: close`; HTTP/1.0 here never does."""
        tokens = {t.strip().lower() for t in self.headers.get("connection", "").split(",")}
        return self.minor_version == 1 and "close" not in tokens

    @property
    def accepts_gzip(self) -> bool:
        for part in self.headers.get("accept-encoding", "").split(","):
            coding, _, params = part.strip().lower().partition(";")
            if coding.strip() == "gzip" and params.replace(" ", "") not in ("q=0", "q=0.0", "q=0.00", "q=0.000"):
                return True
        return False


@dataclass(frozen=True)
class Refusal:
    """A request the endpoint will not serve: answered with `status` and the connection closed."""

    status: int
    message: str


def parse_head(head: bytes) -> Request | Refusal:
    """Parse a request head (request line and fields, without the final CRLF CRLF).

    Refuses (RFC 9110/9112 statuses): more than MAX_HEAD_BYTES or MAX_HEADER_LINES (431), obsolete line folding,
    malformed lines or field names, control characters in values (400), a body announced by Content-Length or
    Transfer-Encoding (413: a GET of /metrics has none, and nothing here reads one).
    """
    if len(head) > MAX_HEAD_BYTES:
        return Refusal(431, f"request head over {MAX_HEAD_BYTES} bytes")
    lines = head.split(b"\r\n")
    if len(lines) - 1 > MAX_HEADER_LINES:
        return Refusal(431, f"more than {MAX_HEADER_LINES} header fields")
    match = _REQUEST_LINE.match(lines[0])
    if match is None:
        return Refusal(400, "malformed request line")
    method, target, minor = match.group(1).decode(), match.group(2).decode("latin-1"), int(match.group(3))
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if line[:1] in (b" ", b"\t"):
            return Refusal(400, "obsolete line folding")
        name, colon, value = line.partition(b":")
        if not colon or not _TOKEN.match(name):
            return Refusal(400, "malformed header field")
        value = value.strip(b" \t")
        if _FIELD_VALUE_BAD.search(value):
            return Refusal(400, "control character in a header field")
        key = name.decode().lower()
        text = value.decode("latin-1")
        headers[key] = f"{headers[key]}, {text}" if key in headers else text
    if "transfer-encoding" in headers or headers.get("content-length", "0").strip() not in ("", "0"):
        return Refusal(413, "request bodies are not accepted")
    return Request(method, target.partition("?")[0], minor, headers)


def response_head(status: int, fields: list[tuple[str, str]], *, keep_alive: bool) -> bytes:
    """The status line and fields of a response, CRLF CRLF included (fields given in order)."""
    lines = [f"HTTP/1.1 {status} {REASONS.get(status, 'Error')}"]
    lines += [f"{name}: {value}" for name, value in fields]
    lines.append(f"Connection: {'keep-alive' if keep_alive else 'close'}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def refusal_response(refusal: Refusal, extra: list[tuple[str, str]] | None = None) -> bytes:
    """A whole short response for a refusal: plain text, closes the connection."""
    body = (refusal.message + "\n").encode()
    fields = [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body))), *(extra or [])]
    return response_head(refusal.status, fields, keep_alive=False) + body
