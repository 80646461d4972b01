"""Kapso errors, classified so callers know whether trying again can help.

Kapso answers with two body styles (docs/kapso.md §5.4): the Meta error object
`{"error": {"message", "type", "code", "error_subcode", ...}}` and Kapso's own
`{"error": "<string>", "code"?: "<string>"}`. Both parse into KapsoError.

The same status means different things on Kapso's two APIs: a 409 from the Meta proxy is "another
message to this contact is in flight" (retry shortly); a 409 from the Platform API is a conflict
(a limit reached, a duplicate) that no retry resolves.
"""

from dataclasses import dataclass

from apps.core.http import parse_retry_after, transient_status

# Meta codes that will not succeed on retry (the SDK's do_not_retry set, plus parameter errors).
PERMANENT_META_CODES = {131047, 131049, 131050, 368, 130497, 131031, 100, 131008, 131009, 131021, 131026, 1026}
# Meta throttling codes: retry later (they arrive as HTTP 400).
THROTTLING_META_CODES = {4, 80007, 130429, 131048, 131056}
# Meta server-side codes: retry.
SERVER_META_CODES = {131000, 131016, 131057, 133004, 133005}

WINDOW_CLOSED_CODE = "131047"


@dataclass
class KapsoError(Exception):
    status: int  # HTTP status; 0 when no response arrived (timeout, connection refused)
    message: str
    code: str = ""  # Meta numeric code as a string, or Kapso's string code
    retry_after: float | None = None
    transient: bool = False
    # No answer came although the request reached Kapso (a read timeout, a dropped connection):
    # it may have taken effect, so repeating a send could deliver it twice.
    maybe_done: bool = False
    # Over Kapso's per-key rate limit (a 429, or held back by our limiter before asking): the request
    # was not made, and waiting `retry_after` is all it takes; it says nothing about the message.
    rate_limited: bool = False

    def __str__(self) -> str:
        code = f" (code {self.code})" if self.code else ""
        return f"Kapso {self.status or 'network'} error{code}: {self.message}"


META_PROXY = "meta"
PLATFORM = "platform"


def error_from_response(
    status: int, body: object, retry_after: str | None = None, *, api: str = META_PROXY
) -> KapsoError:
    message, code = _message_and_code(body)
    return KapsoError(
        status=status,
        message=message or f"HTTP {status}",
        code=code,
        retry_after=parse_retry_after(retry_after),
        transient=_is_transient(status, code, api),
        rate_limited=status == 429,
    )


def network_error(exc: Exception, *, maybe_done: bool = False) -> KapsoError:
    return KapsoError(
        status=0, message=f"{exc.__class__.__name__}: {exc}".strip(": "), transient=True, maybe_done=maybe_done
    )


def _message_and_code(body: object) -> tuple[str, str]:
    if not isinstance(body, dict):
        return (str(body)[:500] if body else "", "")
    error = body.get("error")
    if isinstance(error, dict):
        code = error.get("code")
        details = (error.get("error_data") or {}).get("details") if isinstance(error.get("error_data"), dict) else None
        message = str(error.get("message") or "")
        if details and details not in message:
            message = f"{message} — {details}" if message else str(details)
        return message, "" if code is None else str(code)
    if isinstance(error, str):
        code = body.get("code")
        billing_url = body.get("billing_url")
        if isinstance(billing_url, str) and billing_url.startswith("https://"):
            error = f"{error} Add credit: {billing_url}"  # 402 insufficient_credits: where to fix it
        return error, "" if code is None else str(code)
    return str(body.get("message") or ""), ""


def _is_transient(status: int, code: str, api: str) -> bool:
    if code.isdigit():
        number = int(code)
        if number in THROTTLING_META_CODES or number in SERVER_META_CODES:
            return True
        if number in PERMANENT_META_CODES:
            return False
    if status == 409:
        return api == META_PROXY  # proxy: another message is in flight; Platform API: a real conflict
    # 429: rate limited; 5xx: Kapso/Meta trouble. 402 (insufficient_credits) and 422 (string codes such
    # as messaging_account_mismatch, marketing_preference_stopped) are permanent: retrying can't help.
    return transient_status(status)
