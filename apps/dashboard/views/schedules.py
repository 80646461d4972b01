"""An agent's schedules on its page: list (next run on the organization's clock, the last result
and why it was skipped), add, pause or resume, delete. The same services as the API."""

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from apps.agents import schedules
from apps.agents.models import Agent, Schedule
from apps.orgs.access import get_for_org_or_404
from apps.orgs.models import Role

from ..decorators import org_view

FIELD_NAMES = {"contact": "Contact", "prompt": "What the agent should do", "every_minutes": "Every",
               "at": "Time of day", "template": "Template"}


def schedules_context(agent: Agent, org) -> dict:
    """The card's rows (the template shows their times on the organization's clock)."""
    rows = list(schedules.schedules_of(agent=agent))
    for row in rows:
        row.when = schedules.describe(row)
    return {"schedules": rows, "time_zone": org.time_zone}


@require_GET
@org_view()
def schedule_list(request: HttpRequest, agent_id: str) -> HttpResponse:
    """The schedules card alone: polled, so a run's result shows without reloading."""
    agent = get_for_org_or_404(Agent, request.org, agent_id)
    return render(request, "dashboard/agent_detail.html#schedules",
                  {"agent": agent, **schedules_context(agent, request.org)})


@require_POST
@org_view(Role.ADMIN)
def schedule_add(request: HttpRequest, agent_id: str) -> HttpResponse:
    agent = get_for_org_or_404(Agent.objects.select_related("org"), request.org, agent_id)
    post = request.POST
    kind = post.get("kind", "every")
    every = post.get("every_minutes", "").strip()
    template = None
    if post.get("template_name", "").strip():
        template = {"name": post["template_name"], "language": post.get("template_language", "") or "en_US",
                    "variables": [v.strip() for v in post.get("template_variables", "").splitlines() if v.strip()]}
    try:
        if kind == "every" and not every.isdigit():
            raise schedules.ScheduleInvalid("every_minutes", "Write how many minutes apart the runs are, like 60.")
        schedule = schedules.schedule_create(
            agent=agent, contact=post.get("contact", ""), prompt=post.get("prompt", ""),
            every_minutes=int(every) if kind == "every" else None, at=post.get("at", "") if kind == "at" else None,
            template=template)
    except schedules.ScheduleInvalid as invalid:
        messages.error(request, f"{FIELD_NAMES.get(invalid.field, invalid.field)}: {invalid}")
    else:
        messages.success(request, f"Scheduled: {schedules.describe(schedule).lower()} for {schedule.contact}.")
    return redirect(f"{_agent_url(request, agent)}#schedules")


@require_POST
@org_view(Role.ADMIN)
def schedule_pause(request: HttpRequest, agent_id: str, schedule_id: str) -> HttpResponse:
    schedule = _schedule(request, agent_id, schedule_id)
    schedules.schedule_pause(schedule=schedule, paused=schedule.enabled)
    messages.success(request, f"Schedule for {schedule.contact} {'resumed' if schedule.enabled else 'paused'}.")
    return redirect(f"{_agent_url(request, schedule.agent)}#schedules")


@require_POST
@org_view(Role.ADMIN)
def schedule_delete(request: HttpRequest, agent_id: str, schedule_id: str) -> HttpResponse:
    schedule = _schedule(request, agent_id, schedule_id)
    schedules.schedule_delete(schedule=schedule)
    messages.success(request, f"Schedule for {schedule.contact} deleted.")
    return redirect(f"{_agent_url(request, schedule.agent)}#schedules")


def _schedule(request: HttpRequest, agent_id: str, schedule_id: str) -> Schedule:
    agent = get_for_org_or_404(Agent, request.org, agent_id)
    return get_for_org_or_404(Schedule.objects.filter(agent=agent).select_related("agent__org"), request.org,
                              schedule_id)


def _agent_url(request: HttpRequest, agent: Agent) -> str:
    from django.urls import reverse

    return reverse("agent", kwargs={"org_slug": request.org.slug, "agent_id": agent.pk})
