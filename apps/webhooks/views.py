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

from apps.core.logging import bind
from apps.kapso.payloads import PayloadError, phone_number_id_of, split_delivery, storable_body
from apps.kapso.signatures import signature_is_valid
from apps.whatsapp.selectors import connection_for_webhook

from . import services

logger = logging.getLogger(__name__)
SIGNATURE_HEADER = "X-Webhook-Signature"


class KapsoWebhookView(APIView):
    # Lean on purpose (PERFORMANCE.md §6): no authentication, parsers or throttles run here.
    authentication_classes: list = []
    permission_classes = [AllowAny]
    parser_classes: list = []
    throttle_classes: list = []

    def read(self, request) -> tuple[bytes | None, object, Response | None]:
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
        secret = connection.webhook_secret if connection else ""
        if not signature_is_valid(secret, raw, request.headers.get(SIGNATURE_HEADER)):
            logger.warning("rejected messages webhook: bad signature or unknown number")
            return _error(401, "Invalid or missing signature.")
        try:
            result = services.message_delivery_receive(
                connection=connection, headers=request.headers, raw=raw, items=items
            )
        except services.DeliveryError as exc:
            return _error(400, str(exc))
        return Response({"status": result})


class ProjectWebhookView(KapsoWebhookView):
    def post(self, request):
        raw, body, error = self.read(request)
        if error:
            return error
        if not signature_is_valid(settings.KAPSO_WEBHOOK_SECRET, raw, request.headers.get(SIGNATURE_HEADER)):
            logger.warning("rejected project webhook: bad signature or KAPSO_WEBHOOK_SECRET unset")
            return _error(401, "Invalid or missing signature.")
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


def _error(status: int, message: str) -> Response:
    return Response({"error": message}, status=status)
