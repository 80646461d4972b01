"""The one place that talks to Kapso over HTTP: the Platform API and the Meta proxy.

Platform API responses come wrapped in {"data": ...}; Meta proxy responses are bare (docs/kapso.md §1).
Every failure raises KapsoError, classified as transient or permanent.
"""

import threading
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
from django.conf import settings

from . import ratelimit
from .errors import META_PROXY, PLATFORM, KapsoError, error_from_response, network_error

MESSAGE_WEBHOOK_EVENTS = [
    "whatsapp.message.received",
    "whatsapp.message.sent",
    "whatsapp.message.delivered",
    "whatsapp.message.read",
    "whatsapp.message.failed",
]

_local = threading.local()


def _http() -> httpx.Client:
    """One pooled client per thread: connections to Kapso are reused across calls (keep-alive)."""
    client = getattr(_local, "client", None)
    if client is None or client.is_closed:
        timeout = httpx.Timeout(settings.KAPSO_TIMEOUT_SECONDS, connect=5.0)
        client = httpx.Client(timeout=timeout, limits=httpx.Limits(max_keepalive_connections=10))
        _local.client = client
    return client


def _request(
    method: str, path: str, *, json: Any = None, params: dict | None = None, data: dict | None = None,
    files: dict | None = None,
) -> Any:
    if not settings.KAPSO_API_KEY:
        raise KapsoError(status=0, message="KAPSO_API_KEY is not set", transient=False)
    wait = ratelimit.acquire(settings.KAPSO_API_KEY)
    if wait > 0:  # the key's budget for this minute is spent: not sent, try after `wait`
        raise KapsoError(status=429, message="held back: Kapso's per-minute request limit is reached",
                         transient=True, retry_after=wait, rate_limited=True)
    url = settings.KAPSO_API_BASE_URL + path
    headers = {"X-API-Key": settings.KAPSO_API_KEY, "Accept": "application/json"}
    try:
        response = _http().request(method, url, json=json, params=params, data=data, files=files, headers=headers)
    except (httpx.ReadTimeout, httpx.ReadError, httpx.RemoteProtocolError) as exc:
        raise network_error(exc, maybe_done=True) from exc  # sent, but no answer: Kapso may have acted
    except httpx.HTTPError as exc:
        raise network_error(exc) from exc  # never got through (refused, connect timeout): safe to repeat
    ratelimit.observe(settings.KAPSO_API_KEY, response.status_code, response.headers)
    if response.status_code == 204:
        return None
    try:
        body = response.json()
    except ValueError:
        body = response.text
    if response.status_code >= 400:
        api = PLATFORM if path.startswith("/platform/") else META_PROXY
        raise error_from_response(response.status_code, body, response.headers.get("Retry-After"), api=api)
    return body


def _platform(method: str, path: str, **kwargs) -> Any:
    body = _request(method, "/platform/v1" + path, **kwargs)
    return body.get("data") if isinstance(body, dict) and "data" in body else body


def _meta(method: str, path: str, **kwargs) -> Any:
    return _request(method, f"/meta/whatsapp/{settings.KAPSO_GRAPH_VERSION}" + path, **kwargs)


# --- Platform API ------------------------------------------------------------------------------


def create_customer(*, name: str, external_customer_id: str) -> dict:
    return _platform(
        "POST", "/customers", json={"customer": {"name": name, "external_customer_id": external_customer_id}}
    )


def create_setup_link(
    *,
    customer_id: str,
    success_redirect_url: str | None = None,
    failure_redirect_url: str | None = None,
    reconnect_phone_number: str | None = None,
) -> dict:
    """A hosted onboarding link. Creating one revokes the customer's previous link (Kapso's rule)."""
    link: dict[str, Any] = {}
    if success_redirect_url:
        link["success_redirect_url"] = success_redirect_url
    if failure_redirect_url:
        link["failure_redirect_url"] = failure_redirect_url
    if reconnect_phone_number:
        link["reconnect_phone_number"] = reconnect_phone_number
    return _platform("POST", f"/customers/{customer_id}/setup_links", json={"setup_link": link})


def get_phone_number(phone_number_id: str) -> dict:
    return _platform("GET", f"/whatsapp/phone_numbers/{phone_number_id}")


def find_customer(*, external_customer_id: str) -> dict | None:
    """The customer created earlier with this `external_customer_id`, if any."""
    found = _platform("GET", "/customers", params={"external_customer_id": external_customer_id})
    matches = [c for c in found or [] if isinstance(c, dict) and c.get("external_customer_id") == external_customer_id]
    return matches[0] if matches else None


def register_message_webhook(*, phone_number_id: str, url: str, secret_key: str) -> dict:
    """A number-scoped webhook for message events, v2 payloads, with a secret only we know.

    Idempotent: the number's webhooks are listed first and one already pointing at `url` is reused
    with the new secret (the others at `url` are deleted). So a create whose answer was lost (Kapso
    made the webhook, we never stored its secret) is repaired by the next try, not duplicated."""
    webhook = {"url": url, "secret_key": secret_key, "events": MESSAGE_WEBHOOK_EVENTS, "active": True}
    path = f"/whatsapp/phone_numbers/{phone_number_id}/webhooks"
    ours = [hook for hook in _platform("GET", path) or [] if isinstance(hook, dict) and hook.get("url") == url]
    if not ours:
        return _platform("POST", path, json={"whatsapp_webhook": {**webhook, "kind": "kapso", "payload_version": "v2"}})
    for extra in ours[1:]:
        delete_message_webhook(phone_number_id=phone_number_id, webhook_id=extra["id"])
    return _platform("PATCH", f"{path}/{ours[0]['id']}", json={"whatsapp_webhook": webhook})


def delete_message_webhook(*, phone_number_id: str, webhook_id: str) -> None:
    _platform("DELETE", f"/whatsapp/phone_numbers/{phone_number_id}/webhooks/{webhook_id}")


# --- Meta proxy ---------------------------------------------------------------------------------


def addressee(*, phone: str | None, bsuid: str = "") -> dict:
    """Who a send goes to: `to` with the number when we know it, else `recipient` with the
    contact's business-scoped user id (a contact with a username may never show their number)."""
    if phone:
        return {"to": phone.lstrip("+")}
    if bsuid:
        return {"recipient": bsuid}
    raise KapsoError(status=0, message="the contact has neither a phone number nor a BSUID", transient=False)


def send_message(
    *, phone_number_id: str, content: dict, to: str | None = None, recipient: str = "", reply_to: str = ""
) -> str:
    """Send a message to a number (`to`) or a BSUID (`recipient`); returns the wamid. `content` is
    the type and its object ({"type": "text", "text": {...}}, a template, an interactive message,
    media by link; docs/kapso.md §5.1); `reply_to` quotes that wamid (`context.message_id`)."""
    body: dict[str, Any] = {"messaging_product": "whatsapp", "recipient_type": "individual",
                            **addressee(phone=to, bsuid=recipient), **content}
    if reply_to:
        body["context"] = {"message_id": reply_to}
    response = _meta("POST", f"/{phone_number_id}/messages", json=body)
    try:
        return response["messages"][0]["id"]
    except (KeyError, IndexError, TypeError) as exc:
        raise KapsoError(status=200, message=f"send answered without a message id: {response!r:.200}") from exc


def send_text(
    *, phone_number_id: str, body: str, to: str | None = None, recipient: str = "", preview_url: bool = False
) -> str:
    """Send a text message to a number (`to`) or a BSUID (`recipient`); returns the wamid."""
    content = {"type": "text", "text": {"body": body, "preview_url": preview_url}}
    return send_message(phone_number_id=phone_number_id, content=content, to=to, recipient=recipient)


def list_templates(*, business_account_id: str, after: str | None = None, limit: int = 100) -> dict:
    """One page of a business account's message templates: {"data": [...], "paging": {...}}."""
    params: dict[str, Any] = {"limit": limit}
    if after:
        params["after"] = after
    return _meta("GET", f"/{business_account_id}/message_templates", params=params)


def mark_read(*, phone_number_id: str, wamid: str, typing: bool = False) -> None:
    body: dict[str, Any] = {"messaging_product": "whatsapp", "status": "read", "message_id": wamid}
    if typing:
        body["typing_indicator"] = {"type": "text"}
    _meta("POST", f"/{phone_number_id}/messages", json=body)


def list_messages(
    *,
    phone_number_id: str,
    direction: str | None = None,
    since: str | None = None,
    conversation_id: str | None = None,
    limit: int = 50,
    after: str | None = None,
) -> dict:
    """One page of a number's message history: {"data": [...], "paging": {...}}."""
    params = {"limit": limit, "fields": "kapso(default)"}
    optional = {"direction": direction, "since": since, "conversation_id": conversation_id, "after": after}
    params.update({key: value for key, value in optional.items() if value})
    return _meta("GET", f"/{phone_number_id}/messages", params=params)


# --- Media (docs/kapso.md §7) -------------------------------------------------------------------


class MediaTooLarge(Exception):
    """The file is bigger than the cap: not downloaded past it."""


@dataclass
class Download:
    content: bytes
    content_type: str


def is_kapso_host(url: str) -> bool:
    """Kapso's own hosts: *.kapso.ai, or wherever KAPSO_API_BASE_URL points (the sandbox, a stand-in)."""
    host = (urlsplit(url).hostname or "").lower()
    return host == "kapso.ai" or host.endswith(".kapso.ai") or host == urlsplit(settings.KAPSO_API_BASE_URL).hostname


def get_media(*, media_id: str, phone_number_id: str) -> dict:
    """A media id's metadata: {url, mime_type, file_size, download_url, ...}. The proxy requires
    `phone_number_id`; `download_url` is Kapso's short-lived (about 4 minutes) link to the bytes."""
    return _meta("GET", f"/{media_id}", params={"phone_number_id": phone_number_id})


def upload_media(*, phone_number_id: str, content: bytes, filename: str, content_type: str) -> str:
    """Upload a file to send (`POST /{phone_number_id}/media`, multipart): the `file` part carries
    its real Content-Type (Meta checks it and refuses a typeless part). Returns the media id, for
    a send body like {"type": "image", "image": {"id": ...}}."""
    response = _meta("POST", f"/{phone_number_id}/media", data={"messaging_product": "whatsapp", "type": content_type},
                     files={"file": (filename, content, content_type)})
    media_id = response.get("id") if isinstance(response, dict) else None
    if not isinstance(media_id, str) or not media_id:
        raise KapsoError(status=200, message=f"media upload answered without an id: {response!r:.200}")
    return media_id


def download(url: str, *, max_bytes: int) -> Download:
    """The bytes at `url`, streamed and abandoned past `max_bytes`. The API key goes only to Kapso's
    hosts (as Kapso's SDK does): Meta's CDN rejects it and nobody else may see it."""
    headers = {"X-API-Key": settings.KAPSO_API_KEY} if is_kapso_host(url) and settings.KAPSO_API_KEY else {}
    try:
        with _http().stream("GET", url, headers=headers, follow_redirects=True) as response:
            if response.status_code >= 400:
                response.read()
                raise error_from_response(response.status_code, _json_or_text(response), None)
            declared = int(response.headers.get("Content-Length") or 0)
            if declared > max_bytes:
                raise MediaTooLarge(f"the file is {declared} bytes; the limit is {max_bytes}")
            chunks, size = [], 0
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > max_bytes:
                    raise MediaTooLarge(f"the file is more than {max_bytes} bytes")
                chunks.append(chunk)
            content_type = response.headers.get("Content-Type", "").split(";")[0].strip()
            return Download(content=b"".join(chunks), content_type=content_type)
    except httpx.HTTPError as exc:
        raise network_error(exc) from exc


def _json_or_text(response: httpx.Response) -> object:
    try:
        return response.json()
    except ValueError:
        return response.text


def list_all_messages(*, phone_number_id: str, max_pages: int, **filters) -> list[dict]:
    """Every message matching `filters` (direction, since …), following `paging.cursors.after` page
    by page (100 a page, Kapso's maximum) until the last page or `max_pages`."""
    rows: list[dict] = []
    after = None
    for _ in range(max_pages):
        page = list_messages(phone_number_id=phone_number_id, limit=100, after=after, **filters)
        data = page.get("data") if isinstance(page, dict) else None
        rows.extend(row for row in (data or []) if isinstance(row, dict))
        paging = page.get("paging") if isinstance(page, dict) else None
        cursors = paging.get("cursors") if isinstance(paging, dict) else None
        after = cursors.get("after") if isinstance(cursors, dict) else None
        if not data or not after:
            break
    return rows
