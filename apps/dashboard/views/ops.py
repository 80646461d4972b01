"""Operations: webhook deliveries, API keys, members and invitations."""

import uuid
from datetime import UTC, datetime

from django.contrib import messages
from django.db.models import Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from apps.agents import budget
from apps.orgs import members
from apps.orgs import services as orgs
from apps.orgs.access import get_for_org_or_404, require_role
from apps.orgs.models import ApiKey, Invitation, Membership, ProviderKey, Role
from apps.webhooks import services as webhooks
from apps.webhooks.models import ProcessingResult, WebhookEvent

from ..decorators import org_view, safe_next
from ..forms import ApiKeyForm, BudgetForm, InviteForm, ProviderKeyForm, RoleForm

DELIVERIES_PAGE_SIZE = 50


# --- Webhook deliveries -----------------------------------------------------------------------------


@require_GET
@org_view()
def webhook_list(request: HttpRequest) -> HttpResponse:
    result = request.GET.get("result", "")
    events = WebhookEvent.objects.filter(org=request.org).select_related("connection").defer("body", "headers")
    if result in ProcessingResult.values:
        events = events.filter(result=result)
    after = _delivery_cursor(request.GET.get("after", ""))
    if after is not None:
        events = events.filter(after)
    rows = list(events.order_by("-created_at", "-id")[: DELIVERIES_PAGE_SIZE + 1])
    more, rows = len(rows) > DELIVERIES_PAGE_SIZE, rows[:DELIVERIES_PAGE_SIZE]
    next_cursor = f"{int(rows[-1].created_at.timestamp() * 1_000_000)}.{rows[-1].pk.hex}" if more else ""
    context = {"events": rows, "result": result, "results": ProcessingResult.choices, "next_cursor": next_cursor}
    return render(request, "dashboard/webhooks.html", context)


def _delivery_cursor(cursor: str):
    stamp, _, pk = cursor.partition(".")
    try:
        when, key = datetime.fromtimestamp(int(stamp) / 1_000_000, tz=UTC), uuid.UUID(pk)
    except (ValueError, OverflowError, OSError):
        return None
    return Q(created_at__lt=when) | Q(created_at=when, pk__lt=key)


@require_GET
@org_view()
def webhook_detail(request: HttpRequest, event_id: str) -> HttpResponse:
    event = get_for_org_or_404(WebhookEvent.objects.select_related("connection"), request.org, event_id)
    template = "dashboard/webhooks.html#payload" if request.htmx else "dashboard/webhook_detail.html"
    return render(request, template, {"event": event})


@require_POST
@org_view(Role.ADMIN)
def webhook_reprocess(request: HttpRequest, event_id: str) -> HttpResponse:
    event = get_for_org_or_404(WebhookEvent.objects.select_related("connection"), request.org, event_id)
    if event.result != ProcessingResult.FAILED:
        messages.info(request, "Only failed deliveries can be processed again.")
    else:
        result = webhooks.event_reprocess(event=event)
        words = {ProcessingResult.PENDING: "queued; it will be processed in a moment",
                 ProcessingResult.PROCESSED: "processed",
                 ProcessingResult.IGNORED: "ignored (an event Switchboard does not use)",
                 ProcessingResult.FAILED: "still failing — see the reason on the delivery"}
        messages.success(request, f"The {event.event} delivery was {words.get(result, result)}.")
    return redirect(safe_next(request, reverse("webhook", kwargs={"org_slug": request.org.slug, "event_id": event.pk})))


# --- API keys -------------------------------------------------------------------------------------


@require_http_methods(["GET", "POST"])
@org_view(Role.ADMIN)
def api_key_list(request: HttpRequest) -> HttpResponse:
    """Creating a key answers with the page itself, showing the key this once; it is never
    stored (only its hash) or put in the session, so it cannot be shown again."""
    form = ApiKeyForm(request.POST or None)
    created = raw = None
    if request.method == "POST" and form.is_valid():
        created, raw = orgs.api_key_create(org=request.org, name=form.cleaned_data["name"], created_by=request.user)
        form = ApiKeyForm()
    keys = ApiKey.objects.filter(org=request.org).select_related("created_by").order_by("revoked_at", "-created_at")
    return render(request, "dashboard/api_keys.html", {"keys": keys, "form": form, "created": created, "raw": raw})


@require_POST
@org_view(Role.ADMIN)
def api_key_revoke(request: HttpRequest, key_id: str) -> HttpResponse:
    key = get_for_org_or_404(ApiKey, request.org, key_id)
    if key.revoked_at is None:
        orgs.api_key_revoke(key=key)
        messages.success(request, f"The key {key.prefix}… is revoked. Programs using it now get 401.")
    return redirect("api-keys", org_slug=request.org.slug)


# --- Members --------------------------------------------------------------------------------------


@require_GET
@org_view()
def member_list(request: HttpRequest) -> HttpResponse:
    form = InviteForm(inviter_role=request.membership.role)
    return render(request, "dashboard/members.html", _members_context(request, form))


def _members_context(request: HttpRequest, form: InviteForm) -> dict:
    members = Membership.objects.filter(org=request.org).select_related("user").order_by("user__email")
    invitations = Invitation.objects.filter(org=request.org, accepted_at__isnull=True).order_by("-created_at")
    return {"members": members, "invitations": invitations, "form": form, "roles": Role.choices,
            "can_manage": request.membership.has_role(Role.ADMIN), "is_owner": request.membership.role == Role.OWNER,
            "now": timezone.now()}


@require_POST
@org_view(Role.ADMIN)
def member_invite(request: HttpRequest) -> HttpResponse:
    form = InviteForm(request.POST, inviter_role=request.membership.role)
    if form.is_valid():
        try:
            members.invitation_create(org=request.org, email=form.cleaned_data["email"],
                                       role=form.cleaned_data["role"], invited_by=request.user)
        except members.MemberChangeRefused as refused:
            form.add_error("email", str(refused))
        else:
            messages.success(request, f"Invitation sent to {form.cleaned_data['email']}. "
                                      "The link works once, for 7 days.")
            return redirect("members", org_slug=request.org.slug)
    return render(request, "dashboard/members.html", _members_context(request, form), status=400)


@require_POST
@org_view(Role.ADMIN)
def member_role(request: HttpRequest, membership_id: str) -> HttpResponse:
    membership = get_for_org_or_404(Membership.objects.select_related("user"), request.org, membership_id)
    form = RoleForm(request.POST)
    try:
        if not form.is_valid():
            raise members.MemberChangeRefused("Choose owner, admin or operator.")
        members.member_set_role(membership=membership, role=form.cleaned_data["role"], by=request.membership)
    except members.MemberChangeRefused as refused:
        messages.error(request, str(refused))
    else:
        messages.success(request, f"{membership.user.email} is now {membership.get_role_display().lower()}.")
    return redirect("members", org_slug=request.org.slug)


@require_POST
@org_view(Role.ADMIN)
def member_remove(request: HttpRequest, membership_id: str) -> HttpResponse:
    membership = get_for_org_or_404(Membership.objects.select_related("user"), request.org, membership_id)
    try:
        members.member_remove(membership=membership, by=request.membership)
    except members.MemberChangeRefused as refused:
        messages.error(request, str(refused))
        return redirect("members", org_slug=request.org.slug)
    if membership.user_id == request.user.pk:
        messages.success(request, f"You left {request.org.name}.")
        return redirect("home")
    messages.success(request, f"{membership.user.email} no longer has access to {request.org.name}.")
    return redirect("members", org_slug=request.org.slug)


@require_POST
@org_view(Role.ADMIN)
def invitation_revoke(request: HttpRequest, invitation_id: str) -> HttpResponse:
    invitation = get_for_org_or_404(Invitation, request.org, invitation_id, accepted_at__isnull=True)
    members.invitation_revoke(invitation=invitation)
    messages.success(request, f"The invitation to {invitation.email} no longer works.")
    return redirect("members", org_slug=request.org.slug)




# --- Model usage, budget and the organization's own keys ---------------------------------------------


@require_http_methods(["GET", "POST"])
@org_view(Role.OWNER)
def usage(request: HttpRequest) -> HttpResponse:
    """This month's model usage against the budget; the budget; the organization's own keys."""
    org = request.org
    budget_form = BudgetForm(initial={"monthly_token_budget": org.monthly_token_budget,
                                      "monthly_cost_budget": org.monthly_cost_budget})
    key_form = ProviderKeyForm()
    if request.method == "POST" and request.POST.get("form") == "budget":
        budget_form = BudgetForm(request.POST)
        if budget_form.is_valid():
            orgs.org_budget_set(org=org, **budget_form.cleaned_data)
            messages.success(request, "The budget is saved. It applies from the next message.")
            return redirect("usage", org_slug=org.slug)
    elif request.method == "POST" and request.POST.get("form") == "key":
        key_form = ProviderKeyForm(request.POST)
        if key_form.is_valid():
            row = orgs.provider_key_set(org=org, **key_form.cleaned_data)
            messages.success(request, f"Your {row.provider} key ending in {row.last4} is saved. Your agents on "
                                      f"{row.provider} use it from the next message, outside the platform's budget.")
            return redirect("usage", org_slug=org.slug)
    status = 400 if request.method == "POST" else 200
    context = {"budget_form": budget_form, "key_form": key_form, "used": budget.org_usage(org=org),
               "stopped": budget.budget_exhausted(org=org), "month": budget.month_start(),
               "keys": ProviderKey.objects.filter(org=org).order_by("provider")}
    return render(request, "dashboard/usage.html", context, status=status)


@require_POST
@org_view(Role.OWNER)
def provider_key_delete(request: HttpRequest, key_id: str) -> HttpResponse:
    key = get_for_org_or_404(ProviderKey, request.org, key_id)
    orgs.provider_key_delete(key=key)
    messages.success(request, f"The {key.provider} key ending in {key.last4} was removed; the platform's key is used.")
    return redirect("usage", org_slug=request.org.slug)


# --- The organization's settings and the member's own emails ---------------------------------------


@require_http_methods(["GET", "POST"])
@org_view()
def org_settings(request: HttpRequest) -> HttpResponse:
    """The organization's time zone (admins and owners) and what the signed-in member is emailed."""
    from zoneinfo import available_timezones

    from apps.agents.schedules import org_time_zone_change

    org, membership, error = request.org, request.membership, ""
    if request.method == "POST" and request.POST.get("form") == "zone":
        require_role(membership, Role.ADMIN)
        try:
            org_time_zone_change(org=org, time_zone=request.POST.get("time_zone", ""))
        except orgs.TimeZoneInvalid as invalid:
            error = str(invalid)
        else:
            messages.success(request, f"The time zone is now {org.time_zone}. Schedules and the daily summary "
                                      "follow it.")
            return redirect("org-settings", org_slug=org.slug)
    elif request.method == "POST" and request.POST.get("form") == "emails":
        orgs.membership_emails_set(membership=membership, email_on_handoff=bool(request.POST.get("email_on_handoff")),
                                   email_daily_summary=bool(request.POST.get("email_daily_summary")))
        messages.success(request, "Your email choices are saved.")
        return redirect("org-settings", org_slug=org.slug)
    context = {"zones": sorted(available_timezones()), "error": error,
               "now_local": timezone.now().astimezone(_zone(org.time_zone))}
    return render(request, "dashboard/settings.html", context, status=400 if error else 200)


def _zone(name: str):
    from zoneinfo import ZoneInfo

    return ZoneInfo(name or "UTC")
