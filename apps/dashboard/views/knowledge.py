"""An agent's knowledge on its page: add FAQ entries, texts, files and web pages; fetch a page
again; delete. The same services as the API."""

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from apps.agents.models import Agent
from apps.knowledge import services as knowledge
from apps.knowledge.models import KnowledgeSource
from apps.knowledge.selectors import knowledge_sources
from apps.orgs.access import get_for_org_or_404
from apps.orgs.models import Role

from ..decorators import org_view

FIELD_NAMES = {"question": "Question", "answer": "Answer", "title": "Title", "text": "Text", "url": "Web address",
               "file": "File", "kind": "Kind"}


@require_GET
@org_view()
def knowledge_list(request: HttpRequest, agent_id: str) -> HttpResponse:
    """The knowledge card; polled while a web page is being fetched."""
    agent = get_for_org_or_404(Agent, request.org, agent_id)
    return render(request, "dashboard/agent_detail.html#knowledge", {"agent": agent,
                                                                    "sources": knowledge_sources(agent=agent)})


@require_POST
@org_view(Role.ADMIN)
def knowledge_add(request: HttpRequest, agent_id: str) -> HttpResponse:
    agent = get_for_org_or_404(Agent, request.org, agent_id)
    kind = request.POST.get("kind", "")
    upload = request.FILES.get("file")
    fields = {name: request.POST.get(name, "") for name in ("question", "answer", "title", "text", "url")}
    if upload is not None:
        from django.conf import settings

        fields.update(filename=upload.name, data=upload.read(settings.KNOWLEDGE_FILE_MAX_BYTES + 1))
    try:
        source = knowledge.source_create(agent=agent, kind=kind, **fields)
    except knowledge.SourceInvalid as invalid:
        messages.error(request, f"{FIELD_NAMES.get(invalid.field, invalid.field)}: {invalid}")
    else:
        note = " It is being fetched; this takes a few seconds." if source.status == "fetching" else ""
        messages.success(request, f"Added to {agent.name}'s knowledge: {source}.{note}")
    return redirect("agent", org_slug=request.org.slug, agent_id=agent.pk)


@require_POST
@org_view(Role.ADMIN)
def knowledge_refetch(request: HttpRequest, agent_id: str, source_id: str) -> HttpResponse:
    source = _source(request, agent_id, source_id)
    try:
        knowledge.source_refetch(source=source)
    except knowledge.SourceInvalid as invalid:  # a forged request for a source that is no web page
        messages.error(request, str(invalid))
    else:
        messages.success(request, f"Fetching {source.url} again.")
    return redirect("agent", org_slug=request.org.slug, agent_id=source.agent_id)


@require_POST
@org_view(Role.ADMIN)
def knowledge_delete(request: HttpRequest, agent_id: str, source_id: str) -> HttpResponse:
    source = _source(request, agent_id, source_id)
    knowledge.source_delete(source=source)
    messages.success(request, f"Removed from the knowledge: {source}.")
    return redirect("agent", org_slug=request.org.slug, agent_id=source.agent_id)


def _source(request: HttpRequest, agent_id: str, source_id: str) -> KnowledgeSource:
    agent = get_for_org_or_404(Agent, request.org, agent_id)
    return get_for_org_or_404(KnowledgeSource.objects.filter(agent=agent), request.org, source_id)
