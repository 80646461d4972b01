"""Kapso's HTTP API, as far as Switchboard uses it: the Platform API (`/platform/v1`, `{"data": ...}`
envelopes, `{"error": "<string>"}` errors) and the Meta proxy (`/meta/whatsapp/{version}`, bare
Meta shapes, Meta error objects). docs/kapso.md §1–7; anything else answers 501 with a hint.
"""

import base64
import hashlib
import json
import math
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import wraps
from urllib.parse import urlencode

from django.core import signing
from django.core.cache import cache
from django.db.models import Q, QuerySet
from django.http import HttpResponse, JsonResponse
from django.utils.crypto import constant_time_compare
from django.utils.dateparse import parse_datetime
from django.views.decorators.csrf import csrf_exempt

from . import conf, services
from .models import Customer, Delivery, Media, Message, PhoneNumber, SetupLink, SetupLinkStatus, Webhook
from .payloads import (
    customer_resource,
    delivery_resource,
    listed_message,
    parse_kapso_fields,
    phone_number_resource,
    setup_link_resource,
    webhook_resource,
)
from .services import Refused, meta_error

PLATFORM, META = "platform", "meta"


def reply(body: object, status: int = 200, headers: dict | None = None) -> HttpResponse:
    if status == 204:
        response = HttpResponse(status=204)
    else:
        response = JsonResponse(body, status=status, safe=False, json_dumps_params={"separators": (",", ":")})
    for name, value in (headers or {}).items():
        response[name] = value
    return response


RATE_WINDOW_SECONDS = 60
RATE_LIMITED = {"error": "Rate limit exceeded", "message": "You have exceeded the rate limit. Please try again later."}


def rate_count(key: str) -> tuple[dict, bool]:
    """Kapso's limit: requests per API key per fixed minute. Returns the X-RateLimit-* headers every
    answer carries and whether this request is over the limit (then a 429 with Retry-After)."""
    limit = conf.rate_limit_per_minute()
    now = time.time()
    window = int(now // RATE_WINDOW_SECONDS)
    counter = f"sandbox-rate:{hashlib.sha256(key.encode()).hexdigest()[:16]}:{window}"
    cache.add(counter, 0, RATE_WINDOW_SECONDS + 5)
    try:
        used = cache.incr(counter)
    except ValueError:  # expired between add and incr
        used = 1
    reset = (window + 1) * RATE_WINDOW_SECONDS
    headers = {"X-RateLimit-Limit": str(limit), "X-RateLimit-Remaining": str(max(0, limit - used)),
               "X-RateLimit-Reset": str(reset)}
    if used > limit:
        headers["Retry-After"] = str(max(1, int(reset - now + 0.999)))
    return headers, used > limit


def error(surface: str, status: int, message: str, *, code: int | None = None, type_: str = "OAuthException"):
    if surface == PLATFORM:
        return reply({"error": message}, status)
    return reply({"error": {"message": message, "type": type_, "code": code or status,
                            "fbtrace_id": "SBX" + uuid.uuid4().hex[:16]}}, status)


class NotFound(Exception):
    pass


def endpoint(surface: str, methods: set[str]):
    """Kapso's front door: X-API-Key (the proxy also takes a Bearer token), a JSON object body,
    and errors in the surface's own style."""

    def decorator(view: Callable):
        @csrf_exempt
        @wraps(view)
        def wrapper(request, *args, **kwargs):
            key = request.headers.get("X-API-Key", "").strip()
            if not key and surface == META:
                key = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
            if not key:
                return error(surface, 401, "Missing X-API-Key header", code=190)
            expected = conf.api_key()
            if expected and not constant_time_compare(key, expected):
                return error(surface, 401, "Invalid API key", code=190)
            if request.method not in methods:
                return error(surface, 405, f"Method {request.method} is not allowed here", code=100)
            rate_headers, over = rate_count(key)
            if over:
                return reply(RATE_LIMITED, 429, rate_headers)
            response = _answer(view, request, surface, *args, **kwargs)
            for name, value in rate_headers.items():
                response.setdefault(name, value)
            return response

        return wrapper

    return decorator


def _answer(view: Callable, request, surface: str, *args, **kwargs) -> HttpResponse:
    """The view's answer to a JSON object body, with Refused and NotFound in the surface's style."""
    body = None
    if request.content_type == "multipart/form-data":  # a media upload: the view reads request.POST and FILES
        body = {}
    elif request.method in {"POST", "PATCH", "PUT"}:
        try:
            body = json.loads(request.body or b"{}")
        except (ValueError, UnicodeDecodeError):
            return error(surface, 400, "The body is not valid JSON", code=100)
        if not isinstance(body, dict):
            return error(surface, 400, "The body must be a JSON object", code=100)
    try:
        return view(request, body, *args, **kwargs)
    except Refused as refused:
        return reply(refused.body, refused.status, refused.headers)
    except NotFound as missing:
        if surface == META:
            return error(META, 404, str(missing), code=100, type_="GraphMethodException")
        return error(PLATFORM, 404, str(missing))


def _get(model, what: str, **lookup):
    try:
        found = model.objects.filter(**lookup).first()
    except (ValueError, TypeError):  # not a UUID
        found = None
    if found is None:
        raise NotFound(f"{what} not found")
    return found


def _envelope(name: str, body: dict) -> dict:
    inner = body.get(name)
    if not isinstance(inner, dict):
        raise Refused(422, {"error": f"The body must be {{\"{name}\": {{...}}}}"})
    return inner


def _int(value, default: int, low: int, high: int) -> int:
    try:
        return max(low, min(high, int(value)))
    except (TypeError, ValueError):
        return default


def paginate(request, queryset: QuerySet, render: Callable) -> JsonResponse:
    """Page-number pagination with Kapso's `meta` and X-Total headers (docs/kapso.md §2.1)."""
    page = _int(request.GET.get("page"), 1, 1, 10**6)
    per_page = _int(request.GET.get("per_page"), 20, 1, 100)
    total = queryset.count()
    pages = max(1, math.ceil(total / per_page))
    rows = queryset[(page - 1) * per_page: page * per_page]
    headers = {"X-Total": str(total), "X-Total-Pages": str(pages), "X-Per-Page": str(per_page), "X-Page": str(page)}
    links = []
    if page < pages:
        links.append(f'<{request.path}?{urlencode({"page": page + 1, "per_page": per_page})}>; rel="next"')
    if page > 1:
        links.append(f'<{request.path}?{urlencode({"page": page - 1, "per_page": per_page})}>; rel="prev"')
    if links:
        headers["Link"] = ", ".join(links)
    meta = {"page": page, "per_page": per_page, "total_pages": pages, "total_count": total}
    return reply({"data": [render(row) for row in rows], "meta": meta}, headers=headers)


def _encode_cursor(message: Message) -> str:
    raw = {"values": [message.created_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), str(message.id)],
           "columns": ["created_at", "id"]}
    return base64.b64encode(json.dumps(raw, separators=(",", ":")).encode()).decode()


def _decode_cursor(value: str | None) -> int | None:
    if not value:
        return None
    try:
        return int(json.loads(base64.b64decode(value.encode()))["values"][1])
    except (ValueError, KeyError, IndexError, TypeError):
        raise Refused(400, {"error": "Invalid cursor"}) from None


def cursor_page(request, queryset: QuerySet, render: Callable, *, urls: bool) -> JsonResponse:
    """Cursor pagination, newest first (docs/kapso.md §6). `paging.next` is a URL on the proxy and
    a cursor on the Platform API."""
    limit = _int(request.GET.get("limit"), 20, 1, 100)
    after, before = _decode_cursor(request.GET.get("after")), _decode_cursor(request.GET.get("before"))
    if before is not None:
        rows = list(queryset.filter(id__gt=before).order_by("id")[: limit + 1])
        more_newer, rows = len(rows) > limit, rows[:limit][::-1]
        more_older = queryset.filter(id__lt=rows[-1].id).exists() if rows else False
    else:
        if after is not None:
            queryset = queryset.filter(id__lt=after)
        rows = list(queryset.order_by("-id")[: limit + 1])
        more_older, rows = len(rows) > limit, rows[:limit]
        more_newer = after is not None
    paging: dict = {"cursors": {}}
    if rows:
        paging["cursors"] = {"before": _encode_cursor(rows[0]), "after": _encode_cursor(rows[-1])}
        for key, more, direction in (("next", more_older, "after"), ("previous", more_newer, "before")):
            if more:
                cursor = paging["cursors"][direction]
                query = {**request.GET.dict(), direction: cursor}
                query.pop("before" if direction == "after" else "after", None)
                paging[key] = request.build_absolute_uri(f"{request.path}?{urlencode(query)}") if urls else cursor
    return reply({"data": [render(row) for row in rows], "paging": paging})


def _base_url(request) -> str:
    """Where a browser reaches the sandbox (setup links are opened by people, not by Switchboard)."""
    return conf.public_url() or request.build_absolute_uri("/sandbox").rstrip("/")


# --- Platform API: customers and setup links ------------------------------------------------------


@endpoint(PLATFORM, {"GET", "POST"})
def customers(request, body):
    if request.method == "POST":
        data = _envelope("customer", body)
        name = data.get("name")
        if not isinstance(name, str) or not name.strip():
            raise Refused(422, {"error": "name can't be blank"})
        external = data.get("external_customer_id")
        customer = services.customer_create(name=name.strip()[:200], external_customer_id=external and str(external))
        return reply({"data": customer_resource(customer)}, 201)
    queryset = Customer.objects.all()
    if request.GET.get("name_contains"):
        queryset = queryset.filter(name__icontains=request.GET["name_contains"])
    if request.GET.get("external_customer_id"):
        queryset = queryset.filter(external_customer_id=request.GET["external_customer_id"])
    return paginate(request, queryset, customer_resource)


@endpoint(PLATFORM, {"GET", "PATCH", "DELETE"})
def customer(request, body, customer_id):
    found = _get(Customer, "Customer", pk=customer_id)
    if request.method == "DELETE":
        found.delete()
        return reply(None, 204)
    if request.method == "PATCH":
        data = _envelope("customer", body)
        if "name" in data:
            if not isinstance(data["name"], str) or not data["name"].strip():
                raise Refused(422, {"error": "name can't be blank"})
            found.name = data["name"].strip()[:200]
        if "external_customer_id" in data:
            found.external_customer_id = data["external_customer_id"]
        found.save()
    return reply({"data": customer_resource(found)})


SETUP_LINK_OPTIONS = {"success_redirect_url", "failure_redirect_url", "allowed_origins", "provision_phone_number",
                      "phone_number_area_code", "phone_number_country_isos", "allowed_connection_types",
                      "meta_billing_mode", "theme_config", "reconnect_phone_number", "language"}


def _setup_link_options(data: dict) -> dict:
    unknown = set(data) - SETUP_LINK_OPTIONS - {"status", "expires_at"}
    if unknown:
        raise Refused(422, {"error": f"Unknown setup_link fields: {', '.join(sorted(unknown))}"})
    for key in ("success_redirect_url", "failure_redirect_url"):
        value = data.get(key)
        if value is not None and not (isinstance(value, str) and value.startswith(("http://", "https://"))):
            raise Refused(422, {"error": f"{key} must be an http(s) URL"})
    types = data.get("allowed_connection_types")
    if types is not None and (not isinstance(types, list) or not set(types) <= {"coexistence", "dedicated"}):
        raise Refused(422, {"error": "allowed_connection_types must list coexistence and/or dedicated"})
    return {key: value for key, value in data.items() if key in SETUP_LINK_OPTIONS}


@endpoint(PLATFORM, {"GET", "POST"})
def setup_links(request, body, customer_id):
    owner = _get(Customer, "Customer", pk=customer_id)
    if request.method == "POST":
        options = _setup_link_options(_envelope("setup_link", body))
        link = services.setup_link_create(customer=owner, options=options, base_url=_base_url(request))
        return reply({"data": setup_link_resource(link, with_token=True)}, 201)
    for link in owner.setup_links.filter(status=SetupLinkStatus.ACTIVE):
        services.setup_link_refresh(link)
    queryset = owner.setup_links.select_related("phone_number")
    if request.GET.get("status"):
        queryset = queryset.filter(status=request.GET["status"])
    return paginate(request, queryset, setup_link_resource)


@endpoint(PLATFORM, {"GET", "PATCH"})
def setup_link(request, body, customer_id, link_id):
    link = services.setup_link_refresh(_get(SetupLink, "Setup link", pk=link_id, customer_id=customer_id))
    if request.method == "PATCH":
        data = _envelope("setup_link", body)
        options = _setup_link_options(data)
        if "meta_billing_mode" in options:
            raise Refused(422, {"error": "meta_billing_mode cannot change after creation"})
        if "status" in data:
            if data["status"] != SetupLinkStatus.REVOKED:
                raise Refused(422, {"error": "status can only be set to revoked"})
            link.status = SetupLinkStatus.REVOKED
        if "expires_at" in data:
            expires = parse_datetime(str(data["expires_at"]))
            if expires is None:
                raise Refused(422, {"error": "expires_at must be an ISO 8601 date-time"})
            link.expires_at = expires
        link.options = {**link.options, **options}
        link.save()
    return reply({"data": setup_link_resource(link)})


# --- Platform API: phone numbers ------------------------------------------------------------------


@endpoint(PLATFORM, {"GET"})
def phone_numbers(request, body):
    queryset = PhoneNumber.objects.all()
    for param, lookup in (("phone_number_id", "phone_number_id"), ("business_account_id", "business_account_id"),
                          ("customer_id", "customer_id"), ("name_contains", "name__icontains")):
        if request.GET.get(param):
            queryset = queryset.filter(**{lookup: request.GET[param]})
    return paginate(request, queryset, phone_number_resource)


@endpoint(PLATFORM, {"GET", "PATCH", "DELETE"})
def phone_number(request, body, phone_number_id):
    number = _get(PhoneNumber, "Phone number", phone_number_id=phone_number_id)
    if request.method == "DELETE":
        services.phone_number_delete(number=number)
        return reply(None, 204)
    if request.method == "PATCH":
        data = _envelope("whatsapp_phone_number", body)
        if isinstance(data.get("name"), str) and data["name"].strip():
            number.name = data["name"].strip()[:200]
            number.save()
    return reply({"data": phone_number_resource(number)})


@endpoint(PLATFORM, {"GET"})
def phone_number_health(request, body, phone_number_id):
    number = _get(PhoneNumber, "Phone number", phone_number_id=phone_number_id)
    details = phone_number_resource(number)
    return reply({
        "status": "healthy",
        "timestamp": details["updated_at"],
        "checks": {
            "phone_number_access": {"passed": True, "details": {
                key: details[key] for key in ("verified_name", "display_phone_number", "quality_rating", "status",
                                              "throughput_tier", "id")}},
            "phone_number_connection": {"passed": True, "details": {"status": "CONNECTED"}},
            "messaging_health": {"passed": True, "overall_status": "AVAILABLE", "details": {
                "can_send_message": "AVAILABLE",
                "entities": [{"entity_type": "PHONE_NUMBER", "id": number.phone_number_id,
                              "can_send_message": "AVAILABLE"}]}},
            "webhook_verified": {"passed": True, "details": {"verified_at": details["webhook_verified_at"]}},
        },
    }, headers={"X-Health-RateLimit-Second-Limit": "5", "X-Health-RateLimit-Second-Remaining": "4",
                "X-Health-RateLimit-Minute-Limit": "60", "X-Health-RateLimit-Minute-Remaining": "59"})


# --- Platform API: webhooks ---------------------------------------------------------------------


def _webhook_list(request, queryset: QuerySet) -> JsonResponse:
    if request.GET.get("kind"):
        queryset = queryset.filter(kind=request.GET["kind"])
    if request.GET.get("url_contains"):
        queryset = queryset.filter(url__icontains=request.GET["url_contains"])
    if request.GET.get("active") in {"true", "false"}:
        queryset = queryset.filter(active=request.GET["active"] == "true")
    return paginate(request, queryset.select_related("phone_number"), webhook_resource)


def _webhook_change(request, body, webhook: Webhook) -> JsonResponse:
    if request.method == "DELETE":
        webhook.delete()
        return reply(None, 204)
    if request.method == "PATCH":
        services.webhook_update(webhook=webhook, data=_envelope("whatsapp_webhook", body))
    return reply({"data": webhook_resource(webhook)})


@endpoint(PLATFORM, {"GET", "POST"})
def number_webhooks(request, body, phone_number_id):
    number = _get(PhoneNumber, "Phone number", phone_number_id=phone_number_id)
    if request.method == "POST":
        webhook = services.webhook_create(number=number, data=_envelope("whatsapp_webhook", body))
        return reply({"data": webhook_resource(webhook)}, 201)
    return _webhook_list(request, number.webhooks.all())


@endpoint(PLATFORM, {"GET", "PATCH", "DELETE"})
def number_webhook(request, body, phone_number_id, webhook_id):
    webhook = _get(Webhook, "Webhook", pk=webhook_id, phone_number__phone_number_id=phone_number_id)
    return _webhook_change(request, body, webhook)


@endpoint(PLATFORM, {"GET", "POST"})
def project_webhooks(request, body):
    if request.method == "POST":
        data = _envelope("whatsapp_webhook", body)
        number = None
        if data.get("phone_number_id"):
            number = _get(PhoneNumber, "Phone number", phone_number_id=str(data["phone_number_id"]))
        webhook = services.webhook_create(number=number, data=data)
        return reply({"data": webhook_resource(webhook)}, 201)
    return _webhook_list(request, Webhook.objects.all())


@endpoint(PLATFORM, {"GET", "PATCH", "DELETE"})
def project_webhook(request, body, webhook_id):
    return _webhook_change(request, body, _get(Webhook, "Webhook", pk=webhook_id))


@endpoint(PLATFORM, {"POST"})
def webhook_test(request, body, webhook_id):
    webhook = _get(Webhook, "Webhook", pk=webhook_id)
    services.webhook_test(webhook=webhook, event_type=body.get("event_type"))
    return reply({"data": {"success": True}})


@endpoint(PLATFORM, {"GET"})
def webhook_deliveries(request, body):
    queryset = Delivery.objects.exclude(status="buffering").select_related("webhook", "conversation")
    for param, lookup in (("status", "status"), ("event", "event"), ("webhook_id", "webhook_id")):
        if request.GET.get(param):
            queryset = queryset.filter(**{lookup: request.GET[param]})
    if request.GET.get("errors_only") == "true":
        queryset = queryset.filter(status="failed")
    limit = _int(request.GET.get("limit"), 20, 1, 100)
    return reply({"data": [delivery_resource(d) for d in queryset[:limit]], "paging": {"cursors": {}}})


# --- Message history (Platform API §6.2 and Meta proxy §6.1) -----------------------------------------


def _history(request, queryset: QuerySet) -> QuerySet:
    params = request.GET
    if params.get("conversation_id"):
        queryset = queryset.filter(conversation_id=_uuid_or_refuse(params["conversation_id"]))
    if params.get("direction"):
        queryset = queryset.filter(direction=params["direction"])
    if params.get("status"):
        wanted = params["status"]
        match = Q(status=wanted) | (Q(direction="inbound", status="received") if wanted == "delivered" else Q(pk=None))
        queryset = queryset.filter(match)
    for param, lookup in (("since", "created_at__gte"), ("until", "created_at__lte")):
        if params.get(param):
            # A "+" of an offset arrives as a space when a client did not encode it.
            moment = parse_datetime(params[param].replace(" ", "+"))
            if moment is None:
                raise Refused(400, {"error": {"message": f"Invalid {param}", "type": "OAuthException", "code": 100}})
            queryset = queryset.filter(**{lookup: moment})
    return queryset.select_related("conversation", "phone_number")


def _uuid_or_refuse(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise Refused(400, {"error": "conversation_id must be a UUID"}) from None


@endpoint(PLATFORM, {"GET"})
def platform_messages(request, body):
    queryset = Message.objects.all()
    if request.GET.get("phone_number_id"):
        queryset = queryset.filter(phone_number__phone_number_id=request.GET["phone_number_id"])
    if request.GET.get("phone_number"):
        queryset = queryset.filter(conversation__contact_phone__contains=services.digits(request.GET["phone_number"]))
    if request.GET.get("message_type"):
        queryset = queryset.filter(type=request.GET["message_type"])
    queryset = _history(request, queryset)
    fields = parse_kapso_fields(request.GET.get("fields")) or parse_kapso_fields("kapso(default)")
    return cursor_page(request, queryset, lambda m: listed_message(m, fields), urls=False)


@endpoint(PLATFORM, {"GET"})
def platform_message(request, body, message_id):
    message = _get(Message, "Message", wamid=message_id)
    return reply({"data": listed_message(message, parse_kapso_fields("kapso(default)"))})


# --- Meta proxy --------------------------------------------------------------------------------


def _number_or_404(phone_number_id: str) -> PhoneNumber:
    number = PhoneNumber.objects.filter(phone_number_id=phone_number_id).first()
    if number is None:
        raise meta_error(404, f"Unsupported request - phone number {phone_number_id} does not exist or is not "
                              "connected to this project", code=100, type_="GraphMethodException", subcode=33)
    return number


@endpoint(META, {"GET"})
def meta_phone_number(request, body, version, phone_number_id):
    if "phone_number_id" in request.GET:  # `GET /{media_id}?phone_number_id=`: a media lookup
        return _media_info(request, media_id=phone_number_id)
    number = _number_or_404(phone_number_id)
    data = {
        "id": number.phone_number_id, "verified_name": number.name,
        "display_phone_number": number.display_phone_number, "quality_rating": "GREEN",
        "code_verification_status": "VERIFIED", "is_official_business_account": False, "name_status": "APPROVED",
        "platform_type": "CLOUD_API", "throughput": {"level": "STANDARD"}, "account_mode": "SANDBOX",
        "messaging_limit_tier": "TIER_1K",
    }
    wanted = [f.strip() for f in request.GET.get("fields", "").split(",") if f.strip()]
    if wanted:
        data = {key: value for key, value in data.items() if key in wanted or key == "id"}
    return reply(data)


@endpoint(META, {"GET", "POST"})
def meta_messages(request, body, version, phone_number_id):
    number = _number_or_404(phone_number_id)
    if request.method == "POST":
        if body.get("status") == "read":
            if body.get("messaging_product") != "whatsapp" or not body.get("message_id"):
                raise meta_error(400, "(#100) messaging_product and message_id are required.", code=100)
            services.inbound_mark_read(number=number, wamid=str(body["message_id"]),
                                       typing=bool(body.get("typing_indicator")))
            return reply({"success": True})
        return reply(services.outbound_send(number=number, body=body))
    queryset = _history(request, Message.objects.filter(phone_number=number))
    fields = parse_kapso_fields(request.GET.get("fields"))
    return cursor_page(request, queryset, lambda m: listed_message(m, fields), urls=True)


@endpoint(META, {"POST"})
def meta_media(request, body, version, phone_number_id):
    """`POST /{phone_number_id}/media`, multipart/form-data with `file` and `messaging_product`: `{"id"}`."""
    number = _number_or_404(phone_number_id)
    media = services.media_upload(number=number, fields=request.POST, file=request.FILES.get("file"))
    return reply({"id": media.media_id})


def media_file(request, media_id: str) -> HttpResponse:
    """An uploaded file's bytes, for the phone page (the kapso-emulator's `/media-files/:id`)."""
    media = Media.objects.filter(media_id=media_id).first()
    if media is None:
        return reply({"error": "Not found"}, 404)
    response = HttpResponse(bytes(media.data), content_type=media.mime_type)
    response["Content-Disposition"] = f'inline; filename="{media.media_id}"'
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "sandbox; default-src 'none'"
    return response


@endpoint(META, {"GET"})
def meta_message(request, body, version, phone_number_id, message_id):
    number = _number_or_404(phone_number_id)
    message = Message.objects.filter(phone_number=number, wamid=message_id).select_related("conversation").first()
    if message is None:
        raise Refused(404, {"error": {"message": "Message not found", "type": "MessageError", "code": 404}})
    return reply(listed_message(message, parse_kapso_fields(request.GET.get("fields"))))


@csrf_exempt
def not_implemented(request, surface: str, rest: str = ""):
    """What the sandbox does not stand in for says so, as the kapso-emulator does (docs/kapso.md §10)."""
    return reply({"error": "not_implemented", "surface": surface, "method": request.method, "path": request.path,
                  "hint": "The Kapso sandbox implements what Switchboard uses; see sandbox/urls.py."}, 501)


@endpoint(META, {"GET"})
def meta_templates(request, body, version, business_account_id):
    """`GET /{waba_id}/message_templates`: the demo business's approved templates, one page."""
    return reply({"data": services.DEMO_TEMPLATES, "paging": {"cursors": {"before": "0", "after": "2"}}})


MEDIA_LINK_SECONDS = 240  # Kapso's download_url lives about four minutes


def _media_info(request, *, media_id: str) -> HttpResponse:
    """Meta's media object with Kapso's `download_url` (docs/kapso.md §7); `file_size` is a string."""
    number = _number_or_404(request.GET["phone_number_id"])
    message = services.media_lookup(number=number, media_id=media_id)
    token = signing.dumps(media_id, salt="sandbox-media")
    expires = datetime.now(UTC) + timedelta(seconds=MEDIA_LINK_SECONDS)
    return reply({
        "messaging_product": "whatsapp", "id": media_id, "mime_type": message.content.get("mime_type", ""),
        "sha256": message.content.get("sha256", ""), "file_size": str(len(services.media_bytes(message)[0])),
        "url": f"https://lookaside.fbsbx.com/whatsapp_business/attachments/?mid={media_id}",
        "download_url": f"{_base_url(request)}/meta/whatsapp/media_download?token={token}",
        "download_url_expires_at": expires.strftime("%Y-%m-%dT%H:%M:%SZ"),
    })


def media_download(request) -> HttpResponse:
    """`GET /meta/whatsapp/media_download?token=`: the bytes, no API key (the token is the key)."""
    try:
        media_id = signing.loads(request.GET.get("token", ""), salt="sandbox-media", max_age=MEDIA_LINK_SECONDS)
    except signing.BadSignature:
        return reply({"error": "Not found"}, 404)
    message = Message.objects.filter(content__id=media_id).first()
    if message is None:
        return reply({"error": "Not found"}, 404)
    data, mime_type = services.media_bytes(message)
    response = HttpResponse(data, content_type=mime_type)
    response["Content-Disposition"] = f'inline; filename="{media_id}"'
    response["Cache-Control"] = f"private, max-age={MEDIA_LINK_SECONDS}"
    return response
