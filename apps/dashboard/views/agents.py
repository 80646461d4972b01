"""Agents: list, create, edit, delete, and the playground that chats with one in the browser."""

from datetime import timedelta

from django.contrib import messages
from django.db.models import Count
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from apps.agents import playground
from apps.agents import services as agents
from apps.agents.models import Agent
from apps.agents.runtime import PROMPT_VARIABLES, contact_name_for_prompt, render_prompt
from apps.agents.tools import all_tools
from apps.knowledge.selectors import knowledge_sources
from apps.orgs.access import get_for_org_or_404
from apps.orgs.models import Role
from apps.whatsapp.models import real_numbers

from .. import selectors
from ..decorators import org_view
from ..forms import AgentForm, PlaygroundForm
from .schedules import schedules_context
from .streams import parse_since, stream_response

SAMPLE_CONTACT = {"contactName": contact_name_for_prompt("Maria"), "contactPhone": "+15551234567"}


def _agent(request: HttpRequest, agent_id: str) -> Agent:
    return get_for_org_or_404(Agent, request.org, agent_id)


def _preview(request: HttpRequest, prompt: str, name: str) -> str:
    values = {"organizationName": request.org.name, "agentName": name or "Your agent", **SAMPLE_CONTACT,
              "now": timezone.now().strftime("%Y-%m-%d %H:%M UTC")}
    return render_prompt(prompt, values)


def _form_context(request: HttpRequest, form: AgentForm, agent: Agent | None = None) -> dict:
    data = form.data if form.is_bound else form.initial
    return {"form": form, "agent": agent, "variables": list(PROMPT_VARIABLES.items()), "tools": all_tools(),
            "preview": _preview(request, data.get("system_prompt", ""), data.get("name", ""))}


@require_GET
@org_view()
def agent_list(request: HttpRequest) -> HttpResponse:
    numbers = Count("connections", filter=real_numbers("connections__"))
    agent_rows = Agent.objects.filter(org=request.org).annotate(connection_count=numbers).order_by("name")
    return render(request, "dashboard/agents.html", {"agents": agent_rows})


@require_http_methods(["GET", "POST"])
@org_view(Role.ADMIN)
def agent_new(request: HttpRequest) -> HttpResponse:
    form = AgentForm(request.POST or None, initial=AgentForm.initial_new())
    if request.method == "POST" and form.is_valid():
        try:
            agent = agents.agent_create(org=request.org, **form.cleaned_data)
        except agents.AgentInvalid as invalid:
            form.add_error(invalid.field if invalid.field in form.fields else None, str(invalid))
        else:
            messages.success(request, f"{agent.name} is ready. Try it in the playground, then assign it to a number.")
            return redirect("agent", org_slug=request.org.slug, agent_id=agent.pk)
    return render(request, "dashboard/agent_form.html", _form_context(request, form))


@require_http_methods(["GET", "POST"])
@org_view(Role.ADMIN)
def agent_edit(request: HttpRequest, agent_id: str) -> HttpResponse:
    agent = _agent(request, agent_id)
    form = AgentForm(request.POST or None, initial=AgentForm.initial_for(agent))
    if request.method == "POST" and form.is_valid():
        try:
            agents.agent_update(agent=agent, data=form.cleaned_data)
        except agents.AgentInvalid as invalid:
            form.add_error(invalid.field if invalid.field in form.fields else None, str(invalid))
        else:
            messages.success(request, f"{agent.name} is saved. New messages use it right away.")
            return redirect("agent", org_slug=request.org.slug, agent_id=agent.pk)
    return render(request, "dashboard/agent_form.html", _form_context(request, form, agent))


@require_POST
@org_view(Role.ADMIN)
def agent_prompt_preview(request: HttpRequest) -> HttpResponse:
    preview = _preview(request, request.POST.get("system_prompt", ""), request.POST.get("name", ""))
    return render(request, "dashboard/agent_form.html#preview", {"preview": preview})


@require_POST
@org_view(Role.ADMIN)
def agent_delete(request: HttpRequest, agent_id: str) -> HttpResponse:
    agent = _agent(request, agent_id)
    try:
        agents.agent_delete(agent=agent)
    except agents.AgentInUse as in_use:
        messages.error(request, str(in_use))
        return redirect("agent", org_slug=request.org.slug, agent_id=agent.pk)
    messages.success(request, f"{agent.name} was deleted.")
    return redirect("agents", org_slug=request.org.slug)


@require_GET
@org_view()
def agent_detail(request: HttpRequest, agent_id: str) -> HttpResponse:
    agent = _agent(request, agent_id)
    thread = playground.playground_thread_find(agent=agent, user=request.user)
    items = selectors.thread_stream(thread=thread)[0] if thread else []
    context = {
        "agent": agent, "items": items,
        "connections": list(agent.connections.numbers()), "tools": all_tools(),
        "since": (timezone.now() - timedelta(seconds=15)).isoformat(),
        "thinking": thread is not None and thread.turn_in_progress, "form": PlaygroundForm(),
        "playground": True, "sources": knowledge_sources(agent=agent), **schedules_context(agent, request.org),
    }
    return render(request, "dashboard/agent_detail.html", context)


@require_POST
@org_view()
def playground_send(request: HttpRequest, agent_id: str) -> HttpResponse:
    agent = _agent(request, agent_id)
    form = PlaygroundForm(request.POST)
    if not form.is_valid():
        return stream_response(request, [], error=form.errors["text"][0])
    thread = playground.playground_thread(agent=agent, user=request.user)
    message = playground.playground_say(thread=thread, text=form.cleaned_data["text"])
    if not request.htmx:
        return redirect("agent", org_slug=request.org.slug, agent_id=agent.pk)
    return stream_response(request, [selectors.StreamItem("message", message, message.created_at)], sent=True,
                           thinking=True, error="", context={"playground": True})


@require_GET
@org_view()
def playground_updates(request: HttpRequest, agent_id: str) -> HttpResponse:
    agent = _agent(request, agent_id)
    thread = playground.playground_thread_find(agent=agent, user=request.user)
    since, now = parse_since(request), timezone.now()
    items = selectors.stream_changes(thread=thread, since=since) if thread else []
    return stream_response(request, items, poll_url=request.path, now=now, context={"playground": True},
                           thinking=thread is not None and thread.turn_in_progress)


@require_POST
@org_view()
def playground_reset(request: HttpRequest, agent_id: str) -> HttpResponse:
    agent = _agent(request, agent_id)
    thread = playground.playground_thread_find(agent=agent, user=request.user)
    if thread is not None:
        playground.playground_reset(thread=thread)
    return redirect("agent", org_slug=request.org.slug, agent_id=agent.pk)

