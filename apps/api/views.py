"""The REST API, v1: thin views over the domain's services and selectors.

Every lookup goes through the caller's org (`request.user` is an ApiClient, see auth.py): another
org's object answers 404 exactly like an id that does not exist, and a malformed id does the same.
Errors are JSON with a human message: DRF's `{"detail": ...}` and `{field: [messages]}` shapes,
and `{"error": ...}` for the refusals of our own (409 agent in use or reply refused, 502 Kapso
unavailable).
"""

import logging

from django.conf import settings
from django.db import transaction
from django.db.models import F, Model, QuerySet
from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.parsers import MultiPartParser
from rest_framework.permissions import BasePermission, IsAuthenticated
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import APIView

from apps.agents import budget, schedules
from apps.agents import services as agents
from apps.agents.models import Agent, AgentRun, Schedule
from apps.agents.selectors import agent_list
from apps.contacts import services as contacts
from apps.contacts.models import Contact, ContactAttribute
from apps.contacts.selectors import contacts_filtered
from apps.conversations import privacy
from apps.conversations.media import MediaRefused
from apps.conversations.models import Message, Thread
from apps.conversations.services import ReplyRefused, operator_media_send, operator_reply, template_send
from apps.kapso.errors import KapsoError
from apps.knowledge import services as knowledge
from apps.knowledge.models import KnowledgeSource
from apps.orgs import services as orgs
from apps.orgs.access import get_for_org
from apps.orgs.models import ProviderKey
from apps.webhooks.catchup import connection_catch_up
from apps.whatsapp import services as whatsapp
from apps.whatsapp.hours import HoursInvalid
from apps.whatsapp.models import ConnectionStatus, MessageTemplate, WhatsAppConnection

from . import serializers as s
from .parsers import JsonParser
from .schema import errors

logger = logging.getLogger(__name__)


# --- Helpers -----------------------------------------------------------------------------------


_PAGE = api_settings.DEFAULT_PAGINATION_CLASS


def _paginated(request, queryset: QuerySet, serializer_class) -> Response:
    """DRF's `{count, next, previous, results}` page of the queryset."""
    paginator = _PAGE()
    page = paginator.paginate_queryset(queryset, request)
    return paginator.get_paginated_response(serializer_class(page, many=True).data)


def _error(status: int, message: str) -> Response:
    return Response({"error": message}, status=status)


def _owned(request, queryset: QuerySet | type[Model], object_id: str, noun: str):
    """The caller's org's row with this id, else 404 (unknown, malformed, or another org's)."""
    obj = get_for_org(queryset, request.user.org, object_id)
    if obj is None:
        raise NotFound(f"There is no {noun} with this id.")
    return obj


def _connections(request) -> QuerySet:
    return WhatsAppConnection.objects.numbers().filter(org=request.user.org)


def _threads(request) -> QuerySet:
    return Thread.objects.on_whatsapp().filter(org=request.user.org)


def _input(serializer_class, request, **kwargs) -> dict:
    serializer = serializer_class(data=request.data, **kwargs)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


class OwnersKey(BasePermission):
    """The budget and the provider keys are the owners' (the dashboard's Usage page is owner-only):
    through the API, only a key made by a present owner of the organization reaches them."""

    message = ("Only an API key created by an owner of the organization can read or change its budget and "
               "provider keys. An owner can create one on the dashboard's API keys page.")

    def has_permission(self, request, view) -> bool:
        return orgs.api_key_is_owners(request.auth)


@csrf_exempt  # as DRF's views are: a POST to a wrong path gets this 404, not an HTML CSRF 403
def not_found(request, path: str = "") -> JsonResponse:
    """Unknown paths under /api/v1/ answer JSON too, not the site's HTML 404 page."""
    hint = " URLs of this API have no trailing slash." if request.path.endswith("/") else ""
    return JsonResponse({"detail": f"There is no API endpoint at {request.path}.{hint}"}, status=404)


# --- The organization's model budget and own provider keys ----------------------------------------


def _budget(org) -> dict:
    return {"monthly_token_budget": org.monthly_token_budget, "monthly_cost_budget": org.monthly_cost_budget,
            "usage": {"month": budget.month_start(), **budget.org_usage(org=org)},
            "exhausted_reason": budget.budget_exhausted(org=org) or None}


class BudgetApi(APIView):
    permission_classes = [IsAuthenticated, OwnersKey]

    @extend_schema(operation_id="budget_retrieve", responses={200: s.BudgetSerializer, **errors(403)})
    def get(self, request):
        """The monthly model budget, this month's usage against it, and whether it stopped the agents."""
        return Response(s.BudgetSerializer(_budget(request.user.org)).data)

    @extend_schema(operation_id="budget_update", request=s.BudgetSerializer,
                   responses={200: s.BudgetSerializer, **errors(400, 403)})
    def patch(self, request):
        """`{monthly_token_budget?: int | null, monthly_cost_budget?: "12.50" | null}`; null is no limit.
        A raised budget lets the agents answer again at once."""
        org = request.user.org
        data = {"monthly_token_budget": org.monthly_token_budget, "monthly_cost_budget": org.monthly_cost_budget,
                **_input(s.BudgetSerializer, request)}
        orgs.org_budget_set(org=org, **data)
        return Response(s.BudgetSerializer(_budget(org)).data)


_PROVIDER_KEY_ID = OpenApiParameter("provider_key_id", str, OpenApiParameter.PATH, description="The key's id.")


class ProviderKeyListApi(APIView):
    permission_classes = [IsAuthenticated, OwnersKey]
    pagination_class = _PAGE  # tells the schema that GET answers a page

    @extend_schema(operation_id="provider_keys_list",
                   responses={200: s.ProviderKeySerializer(many=True), **errors(403, 404)})
    def get(self, request):
        """The organization's own provider keys, by provider and last 4 characters (never the key)."""
        keys = ProviderKey.objects.filter(org=request.user.org).order_by("provider")
        return _paginated(request, keys, s.ProviderKeySerializer)

    @extend_schema(operation_id="provider_keys_set", request=s.ProviderKeySerializer,
                   responses={201: s.ProviderKeySerializer, **errors(400, 403)})
    def post(self, request):
        """`{provider, key}`: store (or replace) the key for this provider, encrypted. The agents on
        this provider use it from their next turn, outside the platform's budget. 201."""
        row = orgs.provider_key_set(org=request.user.org, **_input(s.ProviderKeySerializer, request))
        return Response(s.ProviderKeySerializer(row).data, status=201)


@extend_schema(parameters=[_PROVIDER_KEY_ID])
class ProviderKeyDetailApi(APIView):
    permission_classes = [IsAuthenticated, OwnersKey]

    @extend_schema(operation_id="provider_keys_delete", responses={204: None, **errors(403, 404)})
    def delete(self, request, provider_key_id: str):
        """Remove the key; the platform's key (and budget) apply again. 204."""
        orgs.provider_key_delete(key=_owned(request, ProviderKey, provider_key_id, "provider key"))
        return Response(status=204)


# --- Agents ------------------------------------------------------------------------------------

# The service names the model columns; the API nests them under `model`.
_MODEL_FIELDS = {"model_provider": "provider", "model_name": "name", "temperature": "temperature",
                 "max_tokens": "max_tokens"}


def _agent_error(exc: agents.AgentInvalid) -> ValidationError:
    if exc.field in _MODEL_FIELDS:
        return ValidationError({"model": {_MODEL_FIELDS[exc.field]: [str(exc)]}})
    return ValidationError({exc.field: [str(exc)]})


def _agent_or_404(request, agent_id: str):
    return _owned(request, Agent, agent_id, "agent")


class AgentListApi(APIView):
    pagination_class = _PAGE  # tells the schema that GET answers a page

    @extend_schema(operation_id="agents_list", responses={200: s.AgentSerializer(many=True), **errors(404)})
    def get(self, request):
        return _paginated(request, agent_list(org=request.user.org), s.AgentSerializer)

    @extend_schema(request=s.AgentSerializer, responses={201: s.AgentSerializer, **errors(400)})
    def post(self, request):
        data = _input(s.AgentSerializer, request)
        try:
            agent = agents.agent_create(org=request.user.org, **data)
        except agents.AgentInvalid as exc:
            raise _agent_error(exc) from exc
        return Response(s.AgentSerializer(agent).data, status=201)


_AGENT_ID = OpenApiParameter("agent_id", str, OpenApiParameter.PATH, description="The agent's id.")


@extend_schema(parameters=[_AGENT_ID])
class AgentDetailApi(APIView):
    @extend_schema(responses={200: s.AgentSerializer, **errors(404)})
    def get(self, request, agent_id: str):
        return Response(s.AgentSerializer(_agent_or_404(request, agent_id)).data)

    @extend_schema(request=s.AgentSerializer, responses={200: s.AgentSerializer, **errors(400, 404)})
    def patch(self, request, agent_id: str):
        agent = _agent_or_404(request, agent_id)
        data = _input(s.AgentSerializer, request, partial=True)
        try:
            agents.agent_update(agent=agent, data=data)
        except agents.AgentInvalid as exc:
            raise _agent_error(exc) from exc
        return Response(s.AgentSerializer(agent).data)

    @extend_schema(description="Refused with 409 while a connection uses the agent.",
                   responses={204: None, **errors(404, 409)})
    def delete(self, request, agent_id: str):
        try:
            agents.agent_delete(agent=_agent_or_404(request, agent_id))
        except agents.AgentInUse as exc:
            return _error(409, str(exc))
        return Response(status=204)


# --- Schedules ---------------------------------------------------------------------------------


def _schedules(request, agent) -> QuerySet:
    return Schedule.objects.filter(org=request.user.org, agent=agent).select_related("org").order_by("created_at", "id")


@extend_schema(parameters=[_AGENT_ID])
class ScheduleListApi(APIView):
    pagination_class = _PAGE  # tells the schema that GET answers a page

    @extend_schema(operation_id="agents_schedules_list",
                   responses={200: s.ScheduleSerializer(many=True), **errors(404)})
    def get(self, request, agent_id: str):
        return _paginated(request, _schedules(request, _agent_or_404(request, agent_id)), s.ScheduleSerializer)

    @extend_schema(operation_id="agents_schedules_create", request=s.ScheduleSerializer,
                   responses={201: s.ScheduleSerializer, **errors(400, 404)})
    def post(self, request, agent_id: str):
        """Give `every_minutes` or `at`, not both. The first run: `every_minutes` from now, or the next `at`."""
        agent = _agent_or_404(request, agent_id)
        data = _input(s.ScheduleSerializer, request)
        try:
            schedule = schedules.schedule_create(agent=agent, **data)
        except schedules.ScheduleInvalid as exc:
            raise ValidationError({exc.field: [str(exc)]}) from exc
        return Response(s.ScheduleSerializer(schedule).data, status=201)


@extend_schema(parameters=[
    _AGENT_ID, OpenApiParameter("schedule_id", str, OpenApiParameter.PATH, description="The schedule's id."),
])
class ScheduleDetailApi(APIView):
    @extend_schema(operation_id="agents_schedules_destroy", responses={204: None, **errors(404)})
    def delete(self, request, agent_id: str, schedule_id: str):
        agent = _agent_or_404(request, agent_id)
        schedules.schedule_delete(schedule=_owned(request, _schedules(request, agent), schedule_id, "schedule"))
        return Response(status=204)


# --- Connections -------------------------------------------------------------------------------


class ConnectionListApi(APIView):
    pagination_class = _PAGE  # tells the schema that GET answers a page

    @extend_schema(operation_id="connections_list", responses={200: s.ConnectionSerializer(many=True), **errors(404)})
    def get(self, request):
        connections = _connections(request).order_by("-created_at", "-id")
        return _paginated(request, connections, s.ConnectionSerializer)

    @extend_schema(request=s.ConnectionCreateSerializer, responses={201: s.ConnectionSerializer, **errors(400, 502)})
    def post(self, request):
        """Create the org's Kapso customer (first time only) and a setup link; answer the pending
        connection, whose `setup_url` the operator opens to connect a number. When Kapso fails,
        nothing is stored and the answer is 502: trying again later is safe."""
        data = _input(s.ConnectionCreateSerializer, request)
        try:
            connection = whatsapp.connection_create(
                org=request.user.org, environment=data["environment"],
                success_redirect_url=None, failure_redirect_url=None,
            )
        except KapsoError as exc:
            logger.warning("connection setup for org %s failed at Kapso: %s", request.user.org.pk, exc)
            return _error(502, f"Kapso: {exc.message}")
        return Response(s.ConnectionSerializer(connection).data, status=201)


_CONNECTION_ID = OpenApiParameter("connection_id", str, OpenApiParameter.PATH, description="The connection's id.")


@extend_schema(parameters=[_CONNECTION_ID])
class ConnectionTemplatesApi(APIView):
    pagination_class = _PAGE  # tells the schema that GET answers a page

    @extend_schema(operation_id="connections_templates_list",
                   responses={200: s.TemplateSerializer(many=True), **errors(404)})
    def get(self, request, connection_id: str):
        """The number's message templates as last synced from Kapso (when it connected, daily, or
        from the dashboard's button), with their status, category, language and variables."""
        connection = _owned(request, _connections(request), connection_id, "connection")
        templates = MessageTemplate.objects.filter(org=request.user.org, connection=connection)
        return _paginated(request, templates, s.TemplateSerializer)


@extend_schema(parameters=[_CONNECTION_ID])
class ConnectionDetailApi(APIView):
    @extend_schema(responses={200: s.ConnectionSerializer, **errors(404)})
    def get(self, request, connection_id: str):
        connection = _owned(request, _connections(request), connection_id, "connection")
        return Response(s.ConnectionSerializer(connection).data)

    @extend_schema(request=s.ConnectionUpdateSerializer, responses={200: s.ConnectionSerializer, **errors(400, 404)})
    def patch(self, request, connection_id: str):
        """`{agent: <agent id or null>, agent_enabled?: bool, resume_after_minutes?: int | null,
        business_hours?: {timezone, days, start, end} | {}, agent_only_outside_hours?: bool,
        allowed_contacts?, not_allowed_text?}`; any key may come alone."""
        connection = _owned(request, _connections(request), connection_id, "connection")
        data = _input(s.ConnectionUpdateSerializer, request, org=request.user.org)
        give_back = {name: data.pop(name) for name in whatsapp.GIVE_BACK_FIELDS if name in data}
        contacts = {name: data.pop(name) for name in ("allowed_contacts", "not_allowed_text") if name in data}
        with transaction.atomic():
            if give_back:
                try:
                    whatsapp.connection_set_give_back(connection=connection, data=give_back)
                except ValueError as exc:  # HoursInvalid too
                    field = "business_hours" if isinstance(exc, HoursInvalid) else next(iter(give_back))
                    raise ValidationError({field: [str(exc)]}) from exc
            if data:
                whatsapp.connection_assign_agent(
                    connection=connection,
                    agent=data["agent"] if "agent" in data else connection.agent,
                    enabled=data.get("agent_enabled"),
                )
            if contacts:
                whatsapp.connection_set_contacts(connection=connection, **contacts)
        return Response(s.ConnectionSerializer(connection).data)


@extend_schema(parameters=[_CONNECTION_ID])
class ConnectionCatchUpApi(APIView):
    @extend_schema(operation_id="connections_catch_up", request=None,
                   responses={200: s.CatchUpSerializer, **errors(404, 409, 502)})
    def post(self, request, connection_id: str):
        """Ingest the inbound messages Kapso has for this number and Switchboard missed (an outage
        longer than Kapso's retries): new ones are answered, old ones flagged for a person. 409 for
        a number that is not connected; 502 when Kapso cannot be asked (nothing changed)."""
        connection = _owned(request, _connections(request), connection_id, "connection")
        if connection.status != ConnectionStatus.CONNECTED:
            return _error(409, "Only a connected number can be checked for missed messages.")
        try:
            result = connection_catch_up(connection=connection)
        except KapsoError as exc:
            return _error(502, f"Kapso: {exc.message}")
        return Response(s.CatchUpSerializer(result).data)


# --- Threads and messages ----------------------------------------------------------------------


class ThreadListApi(APIView):
    pagination_class = _PAGE  # tells the schema that GET answers a page

    @extend_schema(operation_id="threads_list", parameters=[s.ThreadFilterSerializer],
                   responses={200: s.ThreadSerializer(many=True), **errors(400, 404)})
    def get(self, request):
        """Newest activity first. `?connection=<id>` narrows to one connection; another org's id
        simply matches nothing."""
        # A plain dict, not the QueryDict: DRF would read an empty `?connection=` as no filter at all.
        query = s.ThreadFilterSerializer(data=request.query_params.dict())
        query.is_valid(raise_exception=True)
        threads = _threads(request).order_by(
            F("last_message_at").desc(nulls_last=True), "-created_at", "-id"
        )
        if "connection" in query.validated_data:
            threads = threads.filter(connection_id=query.validated_data["connection"])
        return _paginated(request, threads, s.ThreadSerializer)


_THREAD_ID = OpenApiParameter("thread_id", str, OpenApiParameter.PATH, description="The thread's id.")


@extend_schema(parameters=[_THREAD_ID])
class ThreadDetailApi(APIView):
    @extend_schema(responses={200: s.ThreadSerializer, **errors(404)})
    def get(self, request, thread_id: str):
        return Response(s.ThreadSerializer(_owned(request, _threads(request), thread_id, "thread")).data)

    @extend_schema(request=s.ThreadUpdateSerializer, responses={200: s.ThreadSerializer, **errors(400, 404)})
    def patch(self, request, thread_id: str):
        """`{handoff: "human" | "agent"}`: take the conversation over, or give it back to the agent
        (which then answers what came in meanwhile), as the dashboard's buttons do."""
        thread = _owned(request, _threads(request), thread_id, "thread")
        data = _input(s.ThreadUpdateSerializer, request)
        agents.thread_handoff_set(thread=thread, handoff=data["handoff"])
        thread.refresh_from_db()
        return Response(s.ThreadSerializer(thread).data)


@extend_schema(parameters=[_THREAD_ID])
class ThreadExportApi(APIView):
    @extend_schema(operation_id="threads_export", responses={200: OpenApiTypes.OBJECT, **errors(404)})
    def get(self, request, thread_id: str):
        """Everything stored about the conversation, as one JSON document: every message (text,
        status, type, media link), every agent turn and its tool calls."""
        thread = _owned(request, _threads(request), thread_id, "thread")
        return Response(privacy.thread_export(thread=thread))


@extend_schema(parameters=[_THREAD_ID])
class ThreadEraseApi(APIView):
    @extend_schema(operation_id="threads_erase", request=None, responses={204: None, **errors(404)})
    def post(self, request, thread_id: str):
        """Erase the conversation and every copy of it (messages, turns, tool calls, raw payloads,
        webhook bodies); 204. Afterwards the thread is a 404. An audit entry keeps who and when."""
        thread = _owned(request, _threads(request), thread_id, "thread")
        privacy.thread_erase(thread=thread, erased_by=f"API key {request.user.key_prefix}")
        return Response(status=204)


@extend_schema(parameters=[_THREAD_ID])
class ThreadRunsApi(APIView):
    pagination_class = _PAGE  # tells the schema that GET answers a page

    @extend_schema(operation_id="threads_runs_list", responses={200: s.RunSerializer(many=True), **errors(404)})
    def get(self, request, thread_id: str):
        """The agent's turns in the thread, newest first: status, the model that answered, where
        personal data was redacted, tokens, timings."""
        thread = _owned(request, _threads(request), thread_id, "thread")
        runs = AgentRun.objects.filter(org=request.user.org, thread=thread).order_by("-created_at", "-id")
        return _paginated(request, runs, s.RunSerializer)


@extend_schema(parameters=[_THREAD_ID])
class ThreadMessagesApi(APIView):
    pagination_class = _PAGE  # tells the schema that GET answers a page
    parser_classes = [JsonParser, MultiPartParser]  # a photo or document comes as multipart/form-data

    @extend_schema(operation_id="threads_messages_list", responses={200: s.MessageSerializer(many=True), **errors(404)})
    def get(self, request, thread_id: str):
        """The thread's messages, oldest first."""
        thread = _owned(request, _threads(request), thread_id, "thread")
        messages = Message.objects.filter(org=request.user.org, thread=thread).order_by("created_at", "id")
        return _paginated(request, messages, s.MessageSerializer)

    @extend_schema(request=s.ReplySerializer, responses={
        201: inline_serializer("QueuedReply", {"results": s.MessageSerializer(many=True)}), **errors(400, 404, 409),
    })
    def post(self, request, thread_id: str):
        """An operator's reply `{text}`, queued in the thread's outbox like the agent's answers.

        A reply longer than one WhatsApp message (4,096 characters) becomes several messages, so
        the answer is always the list of what was queued, in sending order, shaped like a page:
        201 `{"results": [message, ...]}`. Each starts `queued`; follow it in GET …/messages.
        The same checks as in the dashboard: outside the 24-hour window, or when the number is not
        connected, the answer is 409 `{"error": why}` and nothing is queued. `{"template": {"name",
        "language", "variables": [...]}}` sends an approved template instead, also outside the window;
        an unknown or unapproved template, or the wrong number of variables, is a 409 that says so.
        A photo (JPEG or PNG, up to 5 MB) or a document (PDF, Word, Excel, PowerPoint, text) goes as
        multipart/form-data, `file` and an optional `caption`; a file WhatsApp would not take (its
        type, its size) is a 400 on `file`.
        """
        thread = _owned(request, _threads(request), thread_id, "thread")
        data = _input(s.ReplySerializer, request)
        try:
            if "template" in data:
                messages = [template_send(thread=thread, **data["template"])]
            elif "file" in data:
                messages = [operator_media_send(thread=thread, file=data["file"], caption=data.get("caption", ""))]
            else:
                messages = operator_reply(thread=thread, text=data["text"])
        except ReplyRefused as refused:
            return _error(409, str(refused))
        except MediaRefused as refused:
            raise ValidationError({"file": [str(refused)]}) from refused
        return Response({"results": s.MessageSerializer(messages, many=True).data}, status=201)


# --- Knowledge -------------------------------------------------------------------------------------


@extend_schema(parameters=[_AGENT_ID])
class KnowledgeListApi(APIView):
    parser_classes = [JsonParser, MultiPartParser]  # files come as multipart/form-data
    pagination_class = _PAGE  # tells the schema that GET answers a page

    @extend_schema(operation_id="agents_knowledge_list",
                   responses={200: s.KnowledgeSourceSerializer(many=True), **errors(404)})
    def get(self, request, agent_id: str):
        agent = _agent_or_404(request, agent_id)
        sources = KnowledgeSource.objects.filter(org=request.user.org, agent=agent).order_by("-created_at", "-id")
        return _paginated(request, sources, s.KnowledgeSourceSerializer)

    @extend_schema(operation_id="agents_knowledge_create", request=s.KnowledgeCreateSerializer,
                   responses={201: s.KnowledgeSourceSerializer, **errors(400, 404)})
    def post(self, request, agent_id: str):
        """Add a source. FAQ entries, texts and files are searchable at once (201, `ready`); a web
        page is fetched in the background (201, `fetching`; then `ready` or `failed` with `error`)."""
        agent = _agent_or_404(request, agent_id)
        data = _input(s.KnowledgeCreateSerializer, request)
        upload = data.pop("file", None)
        if upload is not None:
            data.update(filename=upload.name, data=upload.read(settings.KNOWLEDGE_FILE_MAX_BYTES + 1))
        try:
            source = knowledge.source_create(agent=agent, **data)
        except knowledge.SourceInvalid as exc:
            raise ValidationError({exc.field: [str(exc)]}) from exc
        return Response(s.KnowledgeSourceSerializer(source).data, status=201)


@extend_schema(parameters=[
    _AGENT_ID, OpenApiParameter("source_id", str, OpenApiParameter.PATH, description="The knowledge source's id."),
])
class KnowledgeDetailApi(APIView):
    @extend_schema(operation_id="agents_knowledge_destroy", responses={204: None, **errors(404)})
    def delete(self, request, agent_id: str, source_id: str):
        agent = _agent_or_404(request, agent_id)
        sources = KnowledgeSource.objects.filter(org=request.user.org, agent=agent)
        source = _owned(request, sources, source_id, "knowledge source")
        knowledge.source_delete(source=source)
        return Response(status=204)


# --- Contacts ------------------------------------------------------------------------------------


class ContactAttributeListApi(APIView):
    pagination_class = _PAGE  # tells the schema that GET answers a page

    @extend_schema(operation_id="contact_attributes_list",
                   responses={200: s.ContactAttributeSerializer(many=True), **errors(404)})
    def get(self, request):
        return _paginated(request, ContactAttribute.objects.filter(org=request.user.org).order_by("name", "id"),
                          s.ContactAttributeSerializer)

    @extend_schema(operation_id="contact_attributes_create", request=s.ContactAttributeSerializer,
                   responses={201: s.ContactAttributeSerializer, **errors(400)})
    def post(self, request):
        data = _input(s.ContactAttributeSerializer, request)
        try:
            attribute = contacts.attribute_create(org=request.user.org, **data)
        except contacts.ContactInvalid as exc:
            raise ValidationError({exc.field: [str(exc)]}) from exc
        return Response(s.ContactAttributeSerializer(attribute).data, status=201)


class ContactListApi(APIView):
    pagination_class = _PAGE  # tells the schema that GET answers a page

    @extend_schema(operation_id="contacts_list", parameters=[s.ContactFilterSerializer],
                   responses={200: s.ContactSerializer(many=True), **errors(400, 404)})
    def get(self, request):
        """Most recently seen first. `?q=` part of a name or number; `?attribute=lead_status&value=hot`
        the contacts with that attribute value (without `value`: those that have the attribute)."""
        query = s.ContactFilterSerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        contacts_ = contacts_filtered(org=request.user.org, **query.validated_data)
        return _paginated(request, contacts_, s.ContactSerializer)


_CONTACT_ID = OpenApiParameter("contact_id", str, OpenApiParameter.PATH, description="The contact's id.")


@extend_schema(parameters=[_CONTACT_ID])
class ContactDetailApi(APIView):
    @extend_schema(operation_id="contacts_retrieve", responses={200: s.ContactSerializer, **errors(404)})
    def get(self, request, contact_id: str):
        return Response(s.ContactSerializer(_owned(request, Contact, contact_id, "contact")).data)

    @extend_schema(operation_id="contacts_partial_update", request=s.ContactSerializer,
                   responses={200: s.ContactSerializer, **errors(400, 404)})
    def patch(self, request, contact_id: str):
        """`{name?, attributes?: {name: value | null}}`: attributes not named keep their values."""
        contact = _owned(request, Contact, contact_id, "contact")
        data = _input(s.ContactSerializer, request, partial=True)
        try:
            with transaction.atomic():
                contacts.contact_update(contact=contact, name=data.get("name"), attributes=data.get("attributes"))
        except contacts.ContactInvalid as exc:
            raise ValidationError({"attributes" if exc.field != "name" else "name": [str(exc)]}) from exc
        return Response(s.ContactSerializer(contact).data)
