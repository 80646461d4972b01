"""The official `openai` and `anthropic` SDKs, configured the way Switchboard needs them.

Retries are Switchboard's (the agent turn backs off and tries again, with its own limits), so the
SDKs' own retries are off: one call here is one HTTP request. Every SDK failure becomes a
ModelError classified as transient or permanent. One client per thread and per base URL and key, so a
worker thread keeps its connections to a provider alive.

Other model calls (transcription, and any embeddings or images to come) use the same clients:
`openai_client(provider)`, `openai_client_for(base_url, key)`, `anthropic_client()`, each call wrapped
in `model_errors(name)`.
"""

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import anthropic
import openai
from django.conf import settings

from apps.core.http import parse_retry_after, transient_status

from . import malformed
from .types import ModelError

# A local Ollama usually runs without authentication; every hosted provider needs a key.
KEYLESS_PROVIDERS = {"ollama"}

_local = threading.local()


def required_key(setting: str) -> str:
    key = getattr(settings, setting, "")
    if not key:
        raise ModelError(f"{setting} is not set", transient=False)
    return key


def openai_client(provider: str, own_key: str | None = None) -> tuple[openai.OpenAI, dict]:
    """The OpenAI client for an OpenAI-compatible provider (`<PROVIDER>_BASE_URL`, `<PROVIDER>_API_KEY`,
    or the organization's own key) and the headers to send with each request (see openai_client_for)."""
    if own_key:
        return openai_client_for(getattr(settings, f"{provider.upper()}_BASE_URL"), own_key)
    setting = f"{provider.upper()}_API_KEY"
    keyless = provider in KEYLESS_PROVIDERS and not getattr(settings, setting, "")
    key = "" if keyless else required_key(setting)
    return openai_client_for(getattr(settings, f"{provider.upper()}_BASE_URL"), key)


def openai_client_for(base_url: str, key: str) -> tuple[openai.OpenAI, dict]:
    """An OpenAI client for any OpenAI-compatible base URL, and `extra_headers` for its requests. Without
    a key (a local Ollama) the SDK still wants one: it gets a placeholder, and each request omits the
    Authorization header that would carry it."""
    base_url = base_url.rstrip("/")
    client = _cached(
        ("openai", base_url, key),
        lambda: openai.OpenAI(api_key=key or "none", base_url=base_url, max_retries=0),
    )
    return client, ({} if key else {"Authorization": openai.Omit()})


def anthropic_client(own_key: str | None = None) -> anthropic.Anthropic:
    key = own_key or required_key("ANTHROPIC_API_KEY")
    base_url = settings.ANTHROPIC_BASE_URL.rstrip("/")
    return _cached(
        ("anthropic", base_url, key), lambda: anthropic.Anthropic(api_key=key, base_url=base_url, max_retries=0)
    )


def _cached(key: tuple, build) -> Any:
    clients = getattr(_local, "clients", None)
    if clients is None:
        clients = _local.clients = {}
    if key not in clients:
        clients[key] = build()
    return clients[key]


def timeout() -> float:
    # Read per call (not fixed on the client) so a changed setting takes effect at once.
    return settings.MODEL_TIMEOUT_SECONDS


def json_body(provider: str, raw) -> dict:
    """The JSON object of a raw SDK response (`with_raw_response`), exactly as the provider sent it."""
    try:
        data = raw.http_response.json()
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise malformed(provider, raw.http_response.text)
    return data


_TIMEOUT = (openai.APITimeoutError, anthropic.APITimeoutError)
_CONNECTION = (openai.APIConnectionError, anthropic.APIConnectionError)
_STATUS = (openai.APIStatusError, anthropic.APIStatusError)
_INVALID_RESPONSE = (openai.APIResponseValidationError, anthropic.APIResponseValidationError)
# The HTTP library's exceptions for a base URL that cannot work; by name, as the SDKs wrap them.
_UNUSABLE_URL = {"InvalidURL", "UnsupportedProtocol", "LocalProtocolError"}


@contextmanager
def model_errors(provider: str) -> Iterator[None]:
    """Turns the SDKs' exceptions into ModelError: transient when trying again can help."""
    try:
        yield
    except _TIMEOUT as exc:
        raise ModelError(f"{provider} did not answer within {timeout():g}s", transient=True) from exc
    except _CONNECTION as exc:
        cause = exc.__cause__
        if type(cause).__name__ in _UNUSABLE_URL:
            raise ModelError(f"{provider}: the base URL is not usable: {cause}", transient=False) from exc
        detail = f"{type(cause).__name__}: {cause}" if cause else str(exc)
        raise ModelError(f"{provider} could not be reached: {detail}", transient=True) from exc
    except _STATUS as exc:
        raise http_error(provider, exc.response) from exc
    except _INVALID_RESPONSE as exc:
        raise malformed(provider, exc.message) from exc


def http_error(provider: str, response) -> ModelError:
    status = response.status_code
    # 409 also passes with time here: a conflict on the provider's side (OpenAI uses it so).
    transient = transient_status(status) or status == 409
    return ModelError(
        f"{provider} answered HTTP {status}: {_error_message(response)}",
        transient=transient,
        retry_after=parse_retry_after(response.headers.get("Retry-After")),
        status=status,
    )


def _error_message(response) -> str:
    # OpenAI-style and Anthropic-style bodies both carry {"error": {"message": ...}}.
    try:
        error = response.json().get("error")
    except (ValueError, AttributeError):
        error = None
    if isinstance(error, dict) and error.get("message"):
        return str(error["message"])[:500]
    if isinstance(error, str):
        return error[:500]
    return response.text[:500] or response.reason_phrase
