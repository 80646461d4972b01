"""Conversations: the inbox and a thread, live; reply, take over, hand back."""

from datetime import timedelta

from django.contrib import messages
from django.db import transaction
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from apps.agents import services as agent_services
from apps.agents.summaries import latest_summary
from apps.contacts import services as contact_services
from apps.contacts.selectors import attributes_of, contact_for_thread
from apps.conversations import media, privacy, team
from apps.conversations import selectors as conversations
from apps.conversations import services as conversation_services
from apps.conversations.models import CannedReply, Handoff, Message, Note, Thread
from apps.core.dates import parse_time
from apps.orgs.access import get_for_org_or_404
from apps.orgs.models import Membership, Role
from apps.whatsapp.models import NUMBER_ENVIRONMENTS, WhatsAppConnection
from apps.whatsapp.templates import approved_templates, template_preview, template_variables

from .. import selectors
from ..decorators import org_view
from ..forms import ReplyForm
from .streams import parse_since, stream_response

STATE_CHOICES = [("", "All conversations"), ("unanswered", "Waiting for a reply"), ("human", "Handled by people"),
                 ("agent", "Handled by the agent"), ("open", "24-hour window open")]
ASSIGNED_CHOICES = [("", "Anyone's"), ("me", "Assigned to me"), ("none", "Unassigned (people)")]


def _thread(request: HttpRequest, thread_id: str) -> Thread:
    return get_for_org_or_404(
        Thread.objects.on_whatsapp().select_related("connection__agent"), request.org, thread_id
    )


@require_GET
@org_view()
def org_home(request: HttpRequest) -> HttpResponse:
    return redirect("inbox", org_slug=request.org.slug)


@require_GET
@org_view()
def inbox(request: HttpRequest) -> HttpResponse:
    filters = _inbox_filters(request)
    version = conversations.inbox_version(org=request.org)
    if request.htmx and request.GET.get("v") == version:
        return HttpResponse(status=204)  # the live inbox asked whether anything moved: nothing did
    cursor = request.GET.get("after", "")
    # Threads that wait for a person come first, in their own list; the list below has the others.
    waiting = conversations.inbox_threads(org=request.org, user=request.user, needs_person=True, limit=20,
                                          **filters)[0] if not cursor else []
    threads, next_cursor = conversations.inbox_threads(
        org=request.org, user=request.user, cursor=cursor, needs_person=False, **filters
    )
    now = timezone.now()
    for thread in [*waiting, *threads]:
        thread.stale = conversations.thread_is_stale(thread=thread, now=now)
    context = {"threads": threads, "waiting": waiting, "next_cursor": next_cursor, "filters": filters,
               "version": version, "live": not cursor, "query": _query(filters), "state_choices": STATE_CHOICES,
               "assigned_choices": ASSIGNED_CHOICES, "environments": NUMBER_ENVIRONMENTS}
    if request.htmx and request.htmx.target == "inbox-results":
        return render(request, "dashboard/inbox.html#results", context)
    context["connections"] = list(WhatsAppConnection.objects.numbers().filter(org=request.org)
                                  .order_by("display_phone_number"))
    context["labels"] = conversations.labels_in_use(org=request.org)
    context["attributes"] = attributes_of(org=request.org)
    context["summary"] = latest_summary(org=request.org) if not cursor else None
    return render(request, "dashboard/inbox.html", context)


@require_GET
@org_view()
def attention(request: HttpRequest) -> HttpResponse:
    """The Inbox link's badge: how many conversations wait for a person (polled by the badge)."""
    return render(request, "dashboard/attention.html", {"count": conversations.needs_person_count(org=request.org)})


def _inbox_filters(request: HttpRequest) -> dict:
    connection_id = request.GET.get("connection", "")
    try:
        import uuid

        connection_id = str(uuid.UUID(connection_id)) if connection_id else ""
    except ValueError:
        connection_id = ""
    environment = request.GET.get("environment", "")
    state = request.GET.get("state", "")
    assigned = request.GET.get("assigned", "")
    return {
        "q": request.GET.get("q", "").strip()[:100],
        "connection_id": connection_id,
        "environment": environment if environment in dict(NUMBER_ENVIRONMENTS) else "",
        "state": state if state in conversations.INBOX_STATES else "",
        "assigned": assigned if assigned in dict(ASSIGNED_CHOICES) else "",
        "label": request.GET.get("label", "").strip()[:40],
        "attribute": request.GET.get("attribute", "").strip()[:40],
        "value": request.GET.get("value", "").strip()[:100],
    }


def _query(filters: dict) -> str:
    from urllib.parse import urlencode

    names = {"q": "q", "connection_id": "connection", "environment": "environment", "state": "state",
             "assigned": "assigned", "label": "label", "attribute": "attribute", "value": "value"}
    return urlencode({names[k]: v for k, v in filters.items() if v})


@require_GET
@org_view()
def thread(request: HttpRequest, thread_id: str) -> HttpResponse:
    thread = _thread(request, thread_id)
    before = parse_time(request.GET.get("before", "").replace(" ", "+"))
    items, earlier = selectors.thread_stream(thread=thread, before=before)
    context = {"thread": thread, "items": items, "earlier": earlier, "form": ReplyForm(),
               "attach_accept": ",".join(media.OUTGOING_TYPES),
               "since": (timezone.now() - timedelta(seconds=15)).isoformat(), **_thread_state(thread),
               **_team_context(request, thread)}
    return render(request, "dashboard/thread.html", context)


def _team_context(request: HttpRequest, thread: Thread) -> dict:
    """The side panel: who has it, its labels, the notes, the contact's record, the canned replies."""
    contact = contact_for_thread(thread=thread)
    attributes = attributes_of(org=request.org)
    return {
        "members": Membership.objects.filter(org=request.org).select_related("user").order_by("user__email"),
        "notes": Note.objects.filter(thread=thread).select_related("author").order_by("created_at")[:100],
        "contact": contact,
        "contact_fields": [(a, (contact.attributes.get(a.name, "") if contact else "")) for a in attributes],
        "canned": list(CannedReply.objects.filter(org=request.org).values("shortcut", "text")),
        "stale": conversations.thread_is_stale(thread=thread),
    }


def _thread_state(thread: Thread) -> dict:
    blocked = conversations.reply_blocked_reason(thread=thread)
    # Free text is refused but a template may go (window closed): the reply box offers them.
    templates = approved_templates(connection=thread.connection) if blocked and not \
        conversations.reply_blocked_reason(thread=thread, template=True) else []
    return {"blocked": blocked, "templates": templates, "thinking": selectors.turn_in_progress(thread=thread)}


@require_GET
@org_view()
def thread_updates(request: HttpRequest, thread_id: str) -> HttpResponse:
    thread = _thread(request, thread_id)
    since, now = parse_since(request), timezone.now()
    items = selectors.stream_changes(thread=thread, since=since)
    state = _thread_state(thread)
    return stream_response(request, items, poll_url=request.path, now=now, thinking=state["thinking"],
                           state_template="dashboard/thread.html#thread_state", context={"thread": thread, **state})


@require_GET
@org_view()
def thread_earlier(request: HttpRequest, thread_id: str) -> HttpResponse:
    thread = _thread(request, thread_id)
    before = parse_time(request.GET.get("before", "").replace(" ", "+"))
    if not request.htmx or before is None:
        return redirect(f"{request.path.rsplit('earlier/', 1)[0]}?before={request.GET.get('before', '')}")
    items, earlier = selectors.thread_stream(thread=thread, before=before)
    return render(request, "dashboard/thread.html#earlier_batch", {"items": items, "earlier": earlier,
                                                                     "thread": thread})


@require_POST
@org_view()
def thread_reply(request: HttpRequest, thread_id: str) -> HttpResponse:
    thread = _thread(request, thread_id)
    form = ReplyForm(request.POST, request.FILES)
    error, items = "", []
    if not form.is_valid():
        error = form.first_error()
    else:
        text, file = form.cleaned_data["text"], form.cleaned_data.get("file")
        sent_by = request.user.get_full_name() or request.user.email
        try:
            if file is not None:  # a photo or a document; the text is its caption
                rows = [conversation_services.operator_media_send(thread=thread, file=file, caption=text,
                                                                  sent_by=sent_by)]
            else:
                rows = conversation_services.operator_reply(thread=thread, text=text, sent_by=sent_by)
        except (conversation_services.ReplyRefused, media.MediaRefused) as refused:
            error = str(refused)
        else:
            items = [selectors.StreamItem("message", row, row.created_at) for row in rows]
    if not request.htmx:
        if error:
            messages.error(request, error)
        return redirect("thread", org_slug=request.org.slug, thread_id=thread.pk)
    return stream_response(request, items, error=error, sent=not error)  # error '' clears an earlier one


@require_POST
@org_view()
def thread_take_over(request: HttpRequest, thread_id: str) -> HttpResponse:
    return _set_handoff(request, thread_id, Handoff.HUMAN)


@require_POST
@org_view()
def thread_hand_back(request: HttpRequest, thread_id: str) -> HttpResponse:
    return _set_handoff(request, thread_id, Handoff.AGENT)


def _set_handoff(request: HttpRequest, thread_id: str, handoff: str) -> HttpResponse:
    thread = _thread(request, thread_id)
    agent_services.thread_handoff_set(thread=thread, handoff=handoff)
    if not request.htmx:
        return redirect("thread", org_slug=request.org.slug, thread_id=thread.pk)
    return render(request, "dashboard/thread.html#thread_state", {"thread": thread, **_thread_state(thread)})


# Types a browser may show inline from our origin; anything else (HTML, SVG, PDF, …) is a download.
INLINE_MEDIA_TYPES = {"image/jpeg", "image/png", "image/webp", "image/gif", "audio/ogg", "audio/mpeg", "audio/aac",
                      "audio/mp4", "audio/amr", "video/mp4", "video/3gpp"}


@require_GET
@org_view()
def message_media(request: HttpRequest, thread_id: str, message_id: str) -> HttpResponse:
    """The stored copy of a message's photo, voice note, video or document, for the org's members
    only (Kapso's own links expire and must not reach browsers)."""
    thread = _thread(request, thread_id)
    message = get_for_org_or_404(Message.objects.filter(thread=thread), request.org, message_id)
    try:
        file = media.media_open(message)
    except media.MediaUnavailable as error:
        return HttpResponse(str(error), status=404, content_type="text/plain; charset=utf-8")
    content_type = message.media.get("content_type") or "application/octet-stream"
    inline = content_type in INLINE_MEDIA_TYPES
    filename = message.media.get("filename") or message.media_file.name.rsplit("/", 1)[-1]
    response = FileResponse(file, as_attachment=not inline, filename=filename,
                            content_type=content_type if inline else "application/octet-stream")
    response["Cache-Control"] = "private, max-age=3600"
    response["Content-Security-Policy"] = "sandbox; default-src 'none'"
    response["X-Content-Type-Options"] = "nosniff"
    return response


@require_GET
@org_view(Role.ADMIN)
def thread_export(request: HttpRequest, thread_id: str) -> HttpResponse:
    """Everything stored about the conversation, as a JSON file (what a contact may ask for)."""
    thread = _thread(request, thread_id)
    data = privacy.thread_export(thread=thread)
    response = JsonResponse(data, json_dumps_params={"indent": 2, "ensure_ascii": False})
    response["Content-Disposition"] = f'attachment; filename="conversation-{thread.pk}.json"'
    return response


@require_POST
@org_view(Role.ADMIN)
def thread_erase(request: HttpRequest, thread_id: str) -> HttpResponse:
    """Erase the conversation and every copy of it; only who erased it, and when, is kept."""
    thread = _thread(request, thread_id)
    who = thread.contact_name or thread.contact_phone
    privacy.thread_erase(thread=thread, erased_by=request.user.email or request.user.get_username())
    messages.success(request, f"The conversation with {who} and everything stored about it was erased.")
    return redirect("inbox", org_slug=request.org.slug)


# --- Templates, when the 24-hour window is closed ---------------------------------------------------


def _template_choice(thread: Thread, value: str):
    """The approved template chosen in the form ("name|language"), or None."""
    name, _, language = value.partition("|")
    return next((t for t in approved_templates(connection=thread.connection)
                 if t.name == name and t.language == language), None)


def _template_values(request: HttpRequest, data, template) -> list[str]:
    return [data.get(f"var_{index}", "").strip() for index in range(len(template_variables(template)))]


@require_GET
@org_view()
def thread_template_form(request: HttpRequest, thread_id: str) -> HttpResponse:
    """The variables of the chosen template and a preview of the message, updated as the operator types."""
    thread = _thread(request, thread_id)
    template = _template_choice(thread, request.GET.get("template", ""))
    context = {"thread": thread, "template": template}
    if template is not None:
        values = _template_values(request, request.GET, template)
        context["fields"] = list(zip(template_variables(template), values, strict=True))
        context["preview"] = template_preview(template, values)
    return render(request, "dashboard/thread.html#template_fields", context)


@require_POST
@org_view()
def thread_template_send(request: HttpRequest, thread_id: str) -> HttpResponse:
    thread = _thread(request, thread_id)
    template = _template_choice(thread, request.POST.get("template", ""))
    error, items = "", []
    if template is None:
        error = "Choose one of the approved templates first."
    else:
        try:
            row = conversation_services.template_send(
                thread=thread, name=template.name, language=template.language,
                variables=_template_values(request, request.POST, template),
                sent_by=request.user.get_full_name() or request.user.email,
            )
        except conversation_services.ReplyRefused as refused:
            error = str(refused)
        else:
            items = [selectors.StreamItem("message", row, row.created_at)]
    if not request.htmx:
        if error:
            messages.error(request, error)
        return redirect("thread", org_slug=request.org.slug, thread_id=thread.pk)
    return stream_response(request, items, error=error, sent=not error)


# --- Team work on a thread ---------------------------------------------------------------------


@require_POST
@org_view()
def thread_assign(request: HttpRequest, thread_id: str) -> HttpResponse:
    thread = _thread(request, thread_id)
    user_id = request.POST.get("user", "")
    member = None
    if user_id:
        membership = Membership.objects.filter(org=request.org, user_id=user_id if user_id.isdigit() else None)
        member = membership.select_related("user").first()
        if member is None:
            messages.error(request, "That person is not a member of this organization.")
            return redirect("thread", org_slug=request.org.slug, thread_id=thread.pk)
    team.thread_assign(thread=thread, user=member.user if member else None)
    return redirect("thread", org_slug=request.org.slug, thread_id=thread.pk)


@require_POST
@org_view()
def thread_labels(request: HttpRequest, thread_id: str) -> HttpResponse:
    thread = _thread(request, thread_id)
    try:
        team.thread_labels_set(thread=thread, labels=request.POST.get("labels", "").replace(",", " ").split())
    except team.TeamInvalid as invalid:
        messages.error(request, str(invalid))
    return redirect("thread", org_slug=request.org.slug, thread_id=thread.pk)


@require_POST
@org_view()
def thread_note(request: HttpRequest, thread_id: str) -> HttpResponse:
    thread = _thread(request, thread_id)
    try:
        team.note_add(thread=thread, author=request.user, text=request.POST.get("text", ""))
    except team.TeamInvalid as invalid:
        messages.error(request, str(invalid))
    return redirect("thread", org_slug=request.org.slug, thread_id=thread.pk)


@require_POST
@org_view()
def thread_contact(request: HttpRequest, thread_id: str) -> HttpResponse:
    """The contact's record beside the thread: name and attributes, as the operator typed them."""
    thread = _thread(request, thread_id)
    contact = contact_for_thread(thread=thread)
    if contact is None:
        raise Http404
    values = {a.name: request.POST.get(f"attr-{a.name}", "").strip() for a in attributes_of(org=request.org)}
    try:
        with transaction.atomic():
            contact_services.contact_update(contact=contact, name=request.POST.get("name", contact.name),
                                            attributes={k: (v if v != "" else None) for k, v in values.items()})
    except contact_services.ContactInvalid as invalid:
        messages.error(request, str(invalid))
    else:
        messages.success(request, "The contact's record is saved.")
    return redirect("thread", org_slug=request.org.slug, thread_id=thread.pk)
