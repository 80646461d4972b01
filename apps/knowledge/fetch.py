"""Fetch a web page for the knowledge base without letting a URL reach inside our network.

An operator types the URL, so it is untrusted: Switchboard must not become a way to read its own
private services (SSRF). Every address the host name resolves to must be public; the connection
is then made to the checked address itself (the Host header and TLS name stay the host's), so a
DNS answer that changes between the check and the connection (rebinding) cannot redirect it.
Redirects are followed by hand, each one checked the same way. Size and time are bounded.
"""

import ipaddress
import socket
from urllib.parse import urljoin, urlsplit, urlunsplit

import httpx
from django.conf import settings

from .extract import ExtractError, html_text

MAX_REDIRECTS = 3
TEXT_TYPES = ("text/html", "application/xhtml+xml", "text/plain", "text/markdown")


class FetchError(ValueError):
    """The page cannot be used; the message says why, for the operator."""


def url_check(url: str) -> str:
    """The URL, if it is an http(s) URL with a host; else FetchError. Addresses are checked at fetch."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise FetchError("Give a web address starting with http:// or https://.")
    if parts.username or parts.password:
        raise FetchError("Web addresses with a user name or password are not fetched.")
    return urlunsplit(parts)


def url_fetch(url: str) -> tuple[str, str]:
    """(title, text) of the page at `url`."""
    for _ in range(MAX_REDIRECTS + 1):
        response = _get(url_check(url))
        if response.is_redirect and "location" in response.headers:
            url = urljoin(url, response.headers["location"])
            continue
        if response.status_code >= 400:
            raise FetchError(f"The page answered with an error (HTTP {response.status_code}).")
        return _page_text(response)
    raise FetchError(f"The page redirects more than {MAX_REDIRECTS} times.")


def _get(url: str) -> httpx.Response:
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    address = public_address(parts.hostname, port)
    host = f"[{address}]" if ":" in address else address
    pinned = urlunsplit(parts._replace(netloc=f"{host}:{port}"))
    limit = settings.KNOWLEDGE_URL_MAX_BYTES
    try:
        with httpx.Client(timeout=settings.KNOWLEDGE_URL_TIMEOUT_SECONDS, follow_redirects=False) as client:
            request = client.build_request(
                "GET", pinned, headers={"Host": parts.netloc.rsplit("@", 1)[-1], "User-Agent": "Switchboard/knowledge"},
                extensions={"sni_hostname": parts.hostname},
            )
            response = client.send(request, stream=True)
            try:
                body = b""
                for piece in response.iter_bytes():
                    body += piece
                    if len(body) > limit:
                        raise FetchError(f"The page is larger than {limit // 1_000_000} MB.")
            finally:
                response.close()
    except httpx.TimeoutException:
        raise FetchError("The page took too long to answer.") from None
    except httpx.HTTPError as error:
        raise FetchError(f"The page could not be reached ({error.__class__.__name__}).") from None
    return httpx.Response(response.status_code, headers=response.headers, content=body)


def public_address(host: str, port: int) -> str:
    """One address of `host`, after checking that every address it resolves to is public."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise FetchError(f"The host name {host!r} does not exist.") from None
    addresses = [info[4][0] for info in infos]
    if not settings.KNOWLEDGE_URL_ALLOW_PRIVATE:
        for address in addresses:
            ip = ipaddress.ip_address(address.split("%", 1)[0])
            if not ip.is_global or ip.is_multicast:
                raise FetchError("Private, local and reserved network addresses are not fetched.")
    return addresses[0]


def _page_text(response: httpx.Response) -> tuple[str, str]:
    content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in TEXT_TYPES:
        raise FetchError(f"The page is not text or HTML ({content_type or 'no type given'}).")
    text = response.text
    if content_type in ("text/html", "application/xhtml+xml"):
        title, text = html_text(text)
    else:
        title = ""
    if not text.strip():
        raise ExtractError("The page has no readable text.")
    return title, text
