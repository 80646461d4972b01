"""What drf-spectacular needs to describe the API that it cannot read from the views: the Bearer
authentication, the error shapes and which endpoints are public (the Kapso webhooks are DRF views
too, but they are Kapso's to call, not part of this API)."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension, OpenApiSerializerExtension
from drf_spectacular.utils import OpenApiResponse, inline_serializer
from rest_framework import serializers

API_PREFIX = "/api/v1/"


def only_public_api(endpoints: list, **kwargs) -> list:
    """PREPROCESSING_HOOKS: keep the endpoints under /api/v1/."""
    return [endpoint for endpoint in endpoints if endpoint[0].startswith(API_PREFIX)]


class ApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = "apps.api.auth.ApiKeyAuthentication"
    name = "apiKey"

    def get_security_definition(self, auto_schema) -> dict:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "One of the organization's API keys: `Authorization: Bearer <API key>`.",
        }


class StrictInput(OpenApiSerializerExtension):
    """StrictSerializer refuses unknown keys: say so in the request bodies' schemas."""

    target_class = "apps.api.serializers.StrictSerializer"
    match_subclasses = True

    def map_serializer(self, auto_schema, direction: str) -> dict:
        schema = auto_schema._map_serializer(self.target, direction, bypass_extensions=True)
        if direction == "request":
            schema["additionalProperties"] = False
        return schema


# --- Error shapes --------------------------------------------------------------------------------

Detail = inline_serializer("Detail", {"detail": serializers.CharField(help_text="What went wrong, for a person.")})
Error = inline_serializer("Error", {"error": serializers.CharField(help_text="Why Switchboard refused.")})
# DRF's validation errors: each invalid field maps to its messages; `non_field_errors` for the whole body.
FieldErrors = inline_serializer(
    "FieldErrors",
    {"non_field_errors": serializers.ListField(child=serializers.CharField(), required=False)},
)


def errors(*statuses: int) -> dict:
    """The error responses an operation can give, and the 401 and 429 that every operation can."""
    described = {
        400: OpenApiResponse(FieldErrors, description="Invalid input: `{field: [messages]}`."),
        401: OpenApiResponse(Detail, description="Missing, malformed or revoked API key."),
        403: OpenApiResponse(Detail, description="This API key may not do this; `detail` says why."),
        404: OpenApiResponse(Detail, description="No such object in this organization (or a malformed id)."),
        409: OpenApiResponse(Error, description="Refused in the object's present state; `error` says why."),
        429: OpenApiResponse(Detail, description="Too many requests for this API key; retry after Retry-After."),
        502: OpenApiResponse(Error, description="Kapso failed; nothing was stored, trying again is safe."),
    }
    return {status: described[status] for status in (*statuses, 401, 429)}
