"""Abuse limits shared by the dashboard, the API and the webhooks (libraries do the counting).

- Sign-in: django-axes (settings AXES_*): 10 failures for one account from one address lock that
  pair for 15 minutes; `lockout_response` tells the person so and until when.
- Password-reset requests and invitation acceptance: django-ratelimit, per account and address
  (unknown invitation links per address, as there is no account to key on).
- REST API: DRF throttles (apps/api/throttles.py).
- Webhooks: django-ratelimit counts failed signatures per address; `source_allowed` is the optional
  allow-list of networks.

Every limit keys on `client_ip`, the one place that decides which address a request came from.
"""

import ipaddress
from datetime import timedelta

from django.conf import settings
from django.db.models import Max
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django_ratelimit.core import get_usage


def client_ip(request: HttpRequest) -> str:
    """The address that connected, or, behind TRUSTED_PROXY_COUNT proxies that append to
    X-Forwarded-For, the one the nearest trusted proxy saw. Never the client's own claim."""
    hops = settings.TRUSTED_PROXY_COUNT
    forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if part.strip()]
    if hops and len(forwarded) >= hops:
        return forwarded[-hops]
    return request.META.get("REMOTE_ADDR", "") or "unknown"


def axes_ip(request: HttpRequest) -> str | None:
    """client_ip for django-axes, which stores it in an address column: None when there is none
    (a login made in code, such as a test's force_login)."""
    address = client_ip(request)
    try:
        ipaddress.ip_address(address)
    except ValueError:
        return None
    return address


def axes_username(request: HttpRequest, credentials: dict | None) -> str:
    """Accounts sign in with their email: one lock per address whatever its capitalisation."""
    value = (credentials or {}).get("username") or request.POST.get("username", "")
    return str(value).strip().lower()[:255]


def lockout_response(request: HttpRequest, original_response=None, credentials: dict | None = None) -> HttpResponse:
    """The sign-in page again, saying the account is locked from this address and until when."""
    from axes.models import AccessAttempt

    from apps.dashboard.forms import EmailAuthenticationForm

    last = AccessAttempt.objects.filter(
        username=axes_username(request, credentials), ip_address=axes_ip(request)
    ).aggregate(last=Max("attempt_time"))["last"]
    until = (last or timezone.now()) + settings.AXES_COOLOFF_TIME
    form = EmailAuthenticationForm(request, data=None)
    context = {"form": form, "locked_until": until, "locked_minutes": _minutes_left(until)}
    return render(request, "registration/login.html", context, status=429)


def limit_hit(request: HttpRequest, *, group: str, key: str, rate: str) -> dict | None:
    """Count one request against `rate` for `key`; the usage dict when the limit is exceeded."""
    usage = get_usage(request, group=group, key=lambda _group, _request: key, rate=rate, increment=True)
    return usage if usage and usage["should_limit"] else None


def limit_reached(request: HttpRequest, *, group: str, key: str, rate: str) -> dict | None:
    """Like limit_hit, without counting this request (to ask before doing the work)."""
    usage = get_usage(request, group=group, key=lambda _group, _request: key, rate=rate, increment=False)
    return usage if usage and usage["count"] >= usage["limit"] else None


def locked_message(usage: dict, what: str) -> str:
    until = timezone.now() + timedelta(seconds=max(1, usage["time_left"]))
    return (
        f"Too many {what} from your network. For your security, try again at "
        f"{until:%H:%M} UTC (in {_minutes_left(until)} minutes)."
    )


def source_allowed(request: HttpRequest) -> bool:
    """WEBHOOK_ALLOWED_NETWORKS empty (the default) allows every address."""
    networks = settings.WEBHOOK_ALLOWED_NETWORKS
    if not networks:
        return True
    try:
        address = ipaddress.ip_address(client_ip(request))
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(network, strict=False) for network in networks)


def _minutes_left(until) -> int:
    return max(1, -(-int((until - timezone.now()).total_seconds()) // 60))
