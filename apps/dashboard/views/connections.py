"""WhatsApp connections: connect through Kapso's setup link, assign an agent, reconnect, disconnect."""

import time

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from apps.agents.models import Agent
from apps.kapso.errors import KapsoError
from apps.orgs.access import get_for_org_or_404
from apps.orgs.models import Role
from apps.webhooks import catchup
from apps.webhooks.models import WebhookEvent
from apps.whatsapp import services as whatsapp
from apps.whatsapp.models import ConnectionStatus, MessageTemplate, WhatsAppConnection
from apps.whatsapp.templates import TemplateInvalid, template_variables, templates_sync

from ..decorators import org_view, safe_next
from ..forms import AllowedContactsForm, AssignAgentForm, ConnectForm
from ..words import SETUP_ERRORS

SLOW_SETUP_SECONDS = 90


def _connection(request: HttpRequest, connection_id: str) -> WhatsAppConnection:
    return get_for_org_or_404(WhatsAppConnection.objects.numbers().select_related("agent"), request.org, connection_id)


def _absolute(request: HttpRequest, name: str) -> str:
    return settings.PUBLIC_BASE_URL + reverse(name, kwargs={"org_slug": request.org.slug})


def _kapso_problem(error: KapsoError) -> str:
    if error.status in (401, 403) or "KAPSO_API_KEY" in error.message:
        return ("Switchboard could not sign in to Kapso (the Kapso API key is missing or wrong). "
                "Ask whoever runs Switchboard to check it.")
    if error.transient:
        return "Kapso did not answer just now. Nothing was changed; please try again in a minute."
    return f"Kapso refused the request: {error.message}"


@require_GET
@org_view()
def connection_list(request: HttpRequest) -> HttpResponse:
    connections = (
        WhatsAppConnection.objects.numbers().filter(org=request.org).select_related("agent").order_by("-created_at")
    )
    context = {"connections": connections, "agents": list(Agent.objects.filter(org=request.org).order_by("name")),
               "connect_form": ConnectForm()}
    return render(request, "dashboard/connections.html", context)


@require_POST
@org_view(Role.ADMIN)
def connection_connect(request: HttpRequest) -> HttpResponse:
    """Create the setup link and send the browser to Kapso's hosted page."""
    form = ConnectForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose development or production.")
        return redirect("connections", org_slug=request.org.slug)
    try:
        connection = whatsapp.connection_create(
            org=request.org, environment=form.cleaned_data["environment"],
            success_redirect_url=_absolute(request, "connection-setup-success"),
            failure_redirect_url=_absolute(request, "connection-setup-failure"),
        )
    except KapsoError as error:
        messages.error(request, _kapso_problem(error))
        return redirect("connections", org_slug=request.org.slug)
    if not connection.setup_link_url:
        messages.error(request, "Kapso did not return a setup link. Please try again.")
        return redirect("connections", org_slug=request.org.slug)
    return redirect(connection.setup_link_url)


@require_GET
@org_view()
def setup_success(request: HttpRequest) -> HttpResponse:
    """Kapso sends the browser here when setup completed. The number is ours once Kapso's project
    webhook has been processed; until then the page says so and watches for it."""
    context = {"params": _setup_params(request), "started": int(time.time()),
               **_setup_state(request, _setup_params(request))}
    return render(request, "dashboard/connect_success.html", context)


@require_GET
@org_view()
def setup_status(request: HttpRequest) -> HttpResponse:
    params = _setup_params(request)
    try:
        waited = time.time() - int(request.GET.get("started", "0"))
    except ValueError:
        waited = 0
    context = {"params": params, "started": request.GET.get("started", ""), "slow": waited > SLOW_SETUP_SECONDS,
               **_setup_state(request, params)}
    return render(request, "dashboard/connect_success.html#status", context)


def _setup_params(request: HttpRequest) -> dict:
    keys = ("setup_link_id", "phone_number_id", "display_phone_number", "business_account_id")
    return {key: request.GET.get(key, "")[:100] for key in keys}


def _setup_state(request: HttpRequest, params: dict) -> dict:
    connections = WhatsAppConnection.objects.numbers().filter(org=request.org).select_related("agent")
    connection = None
    if params["phone_number_id"]:
        connection = connections.filter(phone_number_id=params["phone_number_id"]).first()
    if connection is None and params["setup_link_id"]:
        connection = connections.filter(setup_link_id=params["setup_link_id"]).first()
    done = connection is not None and connection.status in (ConnectionStatus.CONNECTED, ConnectionStatus.ERROR)
    agents = list(Agent.objects.filter(org=request.org).order_by("name")) if done else []
    return {"connection": connection, "done": done, "agents": agents}


@require_GET
@org_view()
def setup_failure(request: HttpRequest) -> HttpResponse:
    code = request.GET.get("error_code", "")[:64]
    title, advice = SETUP_ERRORS.get(
        code, ("The WhatsApp setup did not finish.",
               "Kapso did not say why. Try again; if it fails again, contact support with the time it happened."))
    context = {"code": code, "title": title, "advice": advice, "connect_form": ConnectForm()}
    return render(request, "dashboard/connect_failure.html", context)


@require_GET
@org_view()
def connection_detail(request: HttpRequest, connection_id: str) -> HttpResponse:
    connection = _connection(request, connection_id)
    deliveries = WebhookEvent.objects.filter(org=request.org, connection=connection).order_by("-created_at")[:20]
    contacts_form = AllowedContactsForm(initial={"allowed_contacts": "\n".join(connection.allowed_contacts),
                                                 "not_allowed_text": connection.not_allowed_text})
    context = {"connection": connection, "deliveries": deliveries, "contacts_form": contacts_form,
               "agents": list(Agent.objects.filter(org=request.org).order_by("name")),
               "catch_up_minutes": max(1, round(settings.KAPSO_CATCHUP_INTERVAL_SECONDS / 60)),
               "catch_up_max_age": _duration_words(settings.KAPSO_CATCHUP_MAX_AGE_SECONDS),
               "templates": _templates(connection)}
    return render(request, "dashboard/connection_detail.html", context)


def _templates(connection: WhatsAppConnection) -> list:
    templates = list(MessageTemplate.objects.filter(connection=connection))
    for template in templates:
        template.variables = template_variables(template)
    return templates


@require_POST
@org_view()
def connection_templates_sync(request: HttpRequest, connection_id: str) -> HttpResponse:
    """The "Refresh from WhatsApp" button: read the number's templates from Kapso now."""
    connection = _connection(request, connection_id)
    try:
        count = templates_sync(connection=connection)
    except (KapsoError, TemplateInvalid) as error:
        messages.error(request, f"The templates could not be refreshed: {error}")
    else:
        messages.success(request, f"{count} template{'s' if count != 1 else ''} from WhatsApp.")
    return redirect("connection", org_slug=request.org.slug, connection_id=connection.pk)


@require_POST
@org_view(Role.ADMIN)
def connection_contacts(request: HttpRequest, connection_id: str) -> HttpResponse:
    """Whom the agent answers on this number (htmx swaps the card; a plain POST redirects)."""
    connection = _connection(request, connection_id)
    form = AllowedContactsForm(request.POST)
    saved = ""
    if form.is_valid():
        whatsapp.connection_set_contacts(connection=connection, **form.cleaned_data)
        saved = ("Saved: the agent answers only the numbers listed." if connection.allowed_contacts
                 else "Saved: the agent answers everyone.")
        if not request.htmx:
            messages.success(request, saved)
            return redirect("connection", org_slug=request.org.slug, connection_id=connection.pk)
    # 200 with the errors in the card: htmx swaps only successful responses.
    return render(request, "dashboard/connection_detail.html#contacts",
                  {"connection": connection, "contacts_form": form, "saved": saved})


def _duration_words(seconds: float) -> str:
    hours, minutes = int(seconds // 3600), round(seconds % 3600 / 60)
    if hours and not minutes:
        return f"{hours} hour{'s' if hours != 1 else ''}"
    return f"{int(seconds // 60)} minutes"


@require_GET
@org_view()
def connection_kapso_details(request: HttpRequest, connection_id: str) -> HttpResponse:
    """Loaded after the page (Kapso may be slow or down; the page must not wait for it)."""
    connection = _connection(request, connection_id)
    details, problem = {}, ""
    try:
        details = whatsapp.connection_kapso_details(connection=connection)
    except KapsoError as error:
        problem = _kapso_problem(error)
    return render(request, "dashboard/connection_detail.html#kapso", {"details": details, "problem": problem,
                                                                      "connection": connection})


@require_POST
@org_view(Role.ADMIN)
def connection_assign_agent(request: HttpRequest, connection_id: str) -> HttpResponse:
    connection = _connection(request, connection_id)
    form = AssignAgentForm(request.POST, org=request.org)
    if form.is_valid():
        whatsapp.connection_assign_agent(connection=connection, agent=form.cleaned_data["agent"])
        saved = "Agent assigned." if connection.agent else "No agent: people answer this number."
    else:
        saved = "That agent does not exist any more."
    return _agent_control(request, connection, saved)


@require_POST
@org_view(Role.ADMIN)
def connection_switch(request: HttpRequest, connection_id: str) -> HttpResponse:
    connection = _connection(request, connection_id)
    enabled = request.POST.get("enabled") == "on"
    whatsapp.connection_assign_agent(connection=connection, agent=connection.agent, enabled=enabled)
    return _agent_control(request, connection, "The agent answers again." if enabled else "The agent is paused.")


def _agent_control(request: HttpRequest, connection: WhatsAppConnection, saved: str) -> HttpResponse:
    if not request.htmx:
        messages.success(request, saved)
        return redirect(safe_next(request, reverse("connections", kwargs={"org_slug": request.org.slug})))
    agents = list(Agent.objects.filter(org=request.org).order_by("name"))
    return render(request, "dashboard/connections.html#agent_control",
                  {"connection": connection, "agents": agents, "saved": saved})


@require_POST
@org_view(Role.ADMIN)
def connection_reconnect(request: HttpRequest, connection_id: str) -> HttpResponse:
    connection = _connection(request, connection_id)
    try:
        connection = whatsapp.connection_reconnect_link(
            connection=connection,
            success_redirect_url=_absolute(request, "connection-setup-success"),
            failure_redirect_url=_absolute(request, "connection-setup-failure"),
        )
    except KapsoError as error:
        messages.error(request, _kapso_problem(error))
        return redirect("connection", org_slug=request.org.slug, connection_id=connection.pk)
    return redirect(connection.setup_link_url)


@require_POST
@org_view(Role.ADMIN)
def connection_disconnect(request: HttpRequest, connection_id: str) -> HttpResponse:
    connection = _connection(request, connection_id)
    problem = whatsapp.connection_disconnect(connection=connection)
    if problem:
        messages.warning(request, f"{connection} is disconnected in Switchboard, but Kapso could not be told "
                                  f"({problem}). Its messages may keep arriving in the inbox, but replies cannot "
                                  "be sent.")
    else:
        messages.success(request, f"{connection} is disconnected. Reconnect it any time.")
    return redirect("connection", org_slug=request.org.slug, connection_id=connection.pk)


@require_POST
@org_view()
def connection_catch_up(request: HttpRequest, connection_id: str) -> HttpResponse:
    """Look in Kapso's history for messages this number received while Switchboard missed them."""
    connection = _connection(request, connection_id)
    if connection.status != ConnectionStatus.CONNECTED:
        messages.error(request, "Only a connected number can be checked for missed messages.")
        return redirect("connection", org_slug=request.org.slug, connection_id=connection.pk)
    try:
        result = catchup.connection_catch_up(connection=connection)
    except KapsoError as error:
        messages.error(request, _kapso_problem(error))
        return redirect("connection", org_slug=request.org.slug, connection_id=connection.pk)
    messages.success(request, catchup.catch_up_words(result))
    return redirect("connection", org_slug=request.org.slug, connection_id=connection.pk)
