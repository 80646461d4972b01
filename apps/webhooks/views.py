"""Kapso's webhook receivers. Thin: read the raw body, check the signature, hand over to services.

Answers: 200 for anything stored (and for events we ignore, so Kapso stops retrying), 400 for a
body we cannot read, 401 for a missing or wrong signature (nothing stored), 413 for a body over
the size limit. No Kapso or model call happens here.
"""

import json
import logging

from django.conf import settings
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.core import metrics
from apps.core.limits import client_ip, limit_hit, source_allowed
from apps.core.logging import bind
from apps.kapso.payloads import PayloadError, phone_number_id_of, split_delivery, storable_body
from apps.kapso.signatures import signature_is_valid
from apps.whatsapp import services as whatsapp
from apps.whatsapp.selectors import connection_for_webhook

from . import services

logger = logging.getLogger(__name__)
SIGNATURE_HEADER = "X-Webhook-Signature"


class KapsoWebhookView(APIView):
    # Lean on purpose (docs/performance.md, "Measured facts" §6): no authentication, parsers or throttles run here.
    authentication_classes: list = []
    permission_classes = [AllowAny]
    parser_classes: list = []
    throttle_classes: list = []
    endpoint = ""  # the metrics' name for it

    def finalize_response(self, request, response, *args, **kwargs):
        metrics.inc("switchboard_webhook_deliveries", endpoint=self.endpoint, result=_result(response))
        return super().finalize_response(request, response, *args, **kwargs)

    def read(self, request) -> tuple[bytes | None, object, Response | None]:
        if not source_allowed(request):
            return None, None, _error(403, "This address may not deliver webhooks here.")
        length = request.META.get("CONTENT_LENGTH") or "0"
        if not length.isdigit() or int(length) > settings.WEBHOOK_MAX_BODY_BYTES:
            return None, None, _error(413, "The body is larger than this endpoint accepts.")
        raw = request._request.body
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError, RecursionError):
            return raw, None, _error(400, "The body is not valid JSON.")
        try:
            # Before anything is looked up or stored: PostgreSQL refuses NULs and lone surrogates.
            body = storable_body(raw, body)
        except PayloadError as error:
            return raw, None, _error(400, f"The body cannot be read: {error}.")
        return raw, body, None


class MessagesWebhookView(KapsoWebhookView):
    endpoint = "messages"

    def post(self, request):
        raw, body, error = self.read(request)
        if error:
            return error
        try:
            items = split_delivery(body, request.headers.get("X-Webhook-Event"))
        except PayloadError:
            items = []  # unreadable: no number to find, so the signature check below fails closed
        connection = _connection_for(items)
        if connection is not None:
            bind(org=connection.org_slug, connection=connection.id)
        secret = whatsapp.connection_webhook_secret(connection=connection) if connection else ""
        if not signature_is_valid(secret, raw, request.headers.get(SIGNATURE_HEADER)):
            return _bad_signature(request, "messages webhook: bad signature or unknown number")
        try:
            result = services.message_delivery_receive(
                connection=connection, headers=request.headers, raw=raw, items=items
            )
        except services.DeliveryError as exc:
            return _error(400, str(exc))
        return Response({"status": result})


class ProjectWebhookView(KapsoWebhookView):
    endpoint = "project"

    def post(self, request):
        raw, body, error = self.read(request)
        if error:
            return error
        if not signature_is_valid(settings.KAPSO_WEBHOOK_SECRET, raw, request.headers.get(SIGNATURE_HEADER)):
            return _bad_signature(request, "project webhook: bad signature or KAPSO_WEBHOOK_SECRET unset")
        try:
            result = services.project_delivery_receive(headers=request.headers, raw=raw, body=body)
        except services.DeliveryError as exc:
            return _error(400, str(exc))
        return Response({"status": result})


def _connection_for(items: list[tuple[str, dict]]):
    """The connection whose secret signs this delivery: one phone_number_id for all its items."""
    ids = {phone_number_id_of(payload) for _, payload in items}
    if len(ids) != 1 or None in ids:
        return None
    return connection_for_webhook(phone_number_id=ids.pop())


def _bad_signature(request, reason: str) -> Response:
    """401, until one address has sent WEBHOOK_BAD_SIGNATURE_RATE of them: then 429 with Retry-After
    and no log line each, so a flood of forgeries costs little. Only failures are counted: a signed
    delivery is never refused, whatever its address sent before."""
    usage = limit_hit(request, group="webhook-signature", key=client_ip(request),
                      rate=settings.WEBHOOK_BAD_SIGNATURE_RATE)
    if usage:
        if usage["count"] == usage["limit"] + 1:
            logger.warning("rejected %s; more from %s are refused for %ss", reason, client_ip(request),
                           usage["time_left"])
        response = _error(429, "Too many deliveries with a bad signature from this address.")
        response["Retry-After"] = str(max(1, usage["time_left"]))
        return response
    logger.warning("rejected %s", reason)
    return _error(401, "Invalid or missing signature.")


_REFUSALS = {400: "unreadable", 401: "bad_signature", 403: "source_refused", 405: "wrong_method", 413: "too_large",
             429: "throttled"}


def _result(response) -> str:
    """How a delivery was answered, for the metrics: the service's word when stored, else the refusal."""
    if response.status_code == 200:
        return str((getattr(response, "data", None) or {}).get("status") or "ok")
    return _REFUSALS.get(response.status_code, str(response.status_code))


def _error(status: int, message: str) -> Response:
    return Response({"error": message}, status=status)
