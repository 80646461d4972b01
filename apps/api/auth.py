from dataclasses import dataclass

from rest_framework import authentication, exceptions

from apps.orgs.models import Organization
from apps.orgs.services import api_key_authenticate

from .throttles import InvalidKeyThrottle


@dataclass
class ApiClient:
    """The caller of the REST API: an organization, identified by one of its API keys."""

    org: Organization
    key_prefix: str
    is_authenticated: bool = True


class ApiKeyAuthentication(authentication.BaseAuthentication):
    """`Authorization: Bearer <org API key>`."""

    keyword = "Bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode("latin-1")
        if not header:
            return None
        scheme, _, raw = header.partition(" ")
        if scheme != self.keyword or not raw.strip():
            _count_invalid(request)
            raise exceptions.AuthenticationFailed("Use the header `Authorization: Bearer <API key>`.")
        key = api_key_authenticate(raw.strip())
        if key is None:
            _count_invalid(request)
            raise exceptions.AuthenticationFailed("This API key is not valid or was revoked.")
        return ApiClient(org=key.org, key_prefix=key.prefix), key

    def authenticate_header(self, request) -> str:
        return self.keyword


def _count_invalid(request) -> None:
    """Past API_INVALID_KEY_RATE from one address, a wrong key gets 429 with Retry-After, not 401."""
    throttle = InvalidKeyThrottle()
    if not throttle.allow_request(request, None):
        raise exceptions.Throttled(wait=throttle.wait(), detail="Too many requests with an invalid API key.")
