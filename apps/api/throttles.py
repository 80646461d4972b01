"""REST API rate limits (DRF throttling, counted in the cache). DRF answers 429 with Retry-After.

Rates are read from settings at each request (API_RATE, API_INVALID_KEY_RATE), not frozen at import.
"""

from django.conf import settings
from rest_framework.throttling import SimpleRateThrottle

from apps.core.limits import client_ip


class ApiKeyRateThrottle(SimpleRateThrottle):
    """Per API key: one busy integration cannot crowd out the organization's others, nor other tenants."""

    scope = "api_key"

    def get_rate(self) -> str:
        return settings.API_RATE

    def get_cache_key(self, request, view) -> str | None:
        if request.auth is None:  # not signed in with a key: answered 401, nothing to count
            return None
        return self.cache_format % {"scope": self.scope, "ident": request.auth.pk}


class InvalidKeyThrottle(SimpleRateThrottle):
    """Per client address, requests whose key is wrong: guessing keys, or a client with a revoked one."""

    scope = "api_invalid_key"

    def get_rate(self) -> str:
        return settings.API_INVALID_KEY_RATE

    def get_cache_key(self, request, view) -> str:
        return self.cache_format % {"scope": self.scope, "ident": client_ip(request)}
