"""The API's JSON shapes. Serializers only translate and validate input; writes happen in the
services the views call (never in a serializer's create() or update())."""

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from apps.agents.llm import PROVIDERS
from apps.agents.models import Agent, AgentMode, AgentRun, ReplyThreading
from apps.agents.selectors import agent_list
from apps.agents.services import MAX_DEBOUNCE_SECONDS, MIN_TURN_TIMEOUT_SECONDS
from apps.agents.tools import TOOL_NAMES
from apps.conversations.models import Handoff, Message, Thread
from apps.kapso.payloads import E164_PATTERN
from apps.orgs.models import Organization
from apps.orgs.services import provider_key_problem
from apps.whatsapp.models import NUMBER_ENVIRONMENTS, ConnectionStatus, MessageTemplate, WhatsAppConnection
from apps.whatsapp.templates import template_variables

MAX_REPLY_CHARS = 4096 * 4  # four WhatsApp messages at most
MAX_POSITIVE_INT = 2_147_483_647  # PostgreSQL integer, the column behind max_tokens


# The JSON types each kind of field takes. DRF would turn 12 into "12" or "true" into True; here a
# value of the wrong type is refused, as the schema (/api/schema/) says. bool is an int in Python.
_JSON_TYPES = [
    (serializers.BooleanField, (bool,), "Must be true or false."),
    (serializers.IntegerField, (int,), "Must be a whole number."),
    (serializers.FloatField, (int, float), "Must be a number."),
    (serializers.CharField, (str,), "Must be a string."),
    (serializers.UUIDField, (str,), "Must be a string."),
]


def _wrong_type(field: serializers.Field, value) -> str | None:
    if value is None:
        return None  # allow_null decides
    for kind, types, message in _JSON_TYPES:
        if isinstance(field, kind):
            ok = isinstance(value, types) and not (bool not in types and isinstance(value, bool))
            return None if ok else message
    return None


class StrictSerializer(serializers.Serializer):
    """Refuses keys it does not know: a misspelt field is an error, never a silent no-op; and values
    of the wrong JSON type. Read-only fields are known, so an object read from the API can be sent
    back as it is."""

    def to_internal_value(self, data):
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                writable = ", ".join(name for name, field in self.fields.items() if not field.read_only)
                message = f"Unknown field. The fields you can send here are: {writable}."
                raise serializers.ValidationError({name: [message] for name in unknown})
            wrong = {name: _wrong_type(self.fields[name], value) for name, value in data.items()}
            wrong = {name: [message] for name, message in wrong.items() if message and not self.fields[name].read_only}
            if wrong:
                raise serializers.ValidationError(wrong)
        return super().to_internal_value(data)


# --- Agents ------------------------------------------------------------------------------------


class ModelSpecSerializer(StrictSerializer):
    """`{provider, name, temperature?, max_tokens?}`, stored in the agent's model_* columns."""

    provider = serializers.ChoiceField(
        source="model_provider", choices=PROVIDERS,
        error_messages={"invalid_choice": f'Unknown provider "{{input}}"; use one of: {", ".join(PROVIDERS)}.'},
    )
    name = serializers.CharField(source="model_name", max_length=100)
    temperature = serializers.FloatField(min_value=0, max_value=2, required=False, allow_null=True)
    max_tokens = serializers.IntegerField(min_value=1, max_value=MAX_POSITIVE_INT, required=False, allow_null=True)


E164 = rf"^{E164_PATTERN}$"
E164_ERROR = 'Write each number in international format with a leading "+", like +15551234567.'


def phone_list(**kwargs) -> serializers.ListField:
    return serializers.ListField(
        child=serializers.RegexField(E164, error_messages={"invalid": E164_ERROR}), max_length=1000, **kwargs)


class FallbackModelSerializer(StrictSerializer):
    """`{provider, name}`: the model asked when the agent's own still fails after its retries."""

    provider = serializers.ChoiceField(
        choices=PROVIDERS,
        error_messages={"invalid_choice": f'Unknown provider "{{input}}"; use one of: {", ".join(PROVIDERS)}.'},
    )
    name = serializers.CharField(max_length=100)


class PiiRedactionSerializer(StrictSerializer):
    """Personal data (phone numbers, emails, card numbers, IBANs, pii_patterns) replaced by typed
    placeholders in what the model reads (`input`) and in what the agent sends (`output`)."""

    input = serializers.BooleanField()
    output = serializers.BooleanField()


class PiiPatternSerializer(StrictSerializer):
    name = serializers.CharField(max_length=40)
    pattern = serializers.CharField(max_length=500)


class VisionModelSerializer(FallbackModelSerializer):
    """`{provider, name}` of the model for turns with images; null when the agent names none."""

    def to_representation(self, value):
        return super().to_representation(value) if value else None


class AgentSerializer(StrictSerializer):
    id = serializers.UUIDField(read_only=True)
    name = serializers.CharField(max_length=100)
    slug = serializers.SlugField(max_length=60)
    system_prompt = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False)
    # source="*": the nested object reads from and writes to the agent's own columns.
    model = ModelSpecSerializer(source="*")
    tools = serializers.ListField(
        child=serializers.ChoiceField(
            choices=TOOL_NAMES,
            error_messages={"invalid_choice": f'Unknown tool "{{input}}"; the tools are: {", ".join(TOOL_NAMES)}.'},
        ),
        required=False,
    )
    fallback_text = serializers.CharField(required=False)
    # Numbers besides the current contact that the tools may read or message: empty, only the contact.
    allowed_numbers = serializers.ListField(child=serializers.CharField(max_length=40), max_length=100, required=False)
    history_window = serializers.IntegerField(min_value=1, max_value=200, required=False)
    max_steps = serializers.IntegerField(min_value=1, max_value=20, required=False)
    acknowledgement_text = serializers.CharField(max_length=1000, required=False, allow_blank=True)
    typing_indicator = serializers.BooleanField(required=False)
    reset_command = serializers.CharField(max_length=40, required=False, allow_blank=True)
    mode = serializers.ChoiceField(choices=AgentMode.values, required=False)
    fallback_model = FallbackModelSerializer(required=False, allow_null=True)
    max_input_chars = serializers.IntegerField(min_value=1, max_value=MAX_POSITIVE_INT, required=False,
                                               allow_null=True)
    turn_timeout_seconds = serializers.IntegerField(min_value=MIN_TURN_TIMEOUT_SECONDS, max_value=3600,
                                                    required=False, allow_null=True)
    debounce_seconds = serializers.IntegerField(min_value=0, max_value=MAX_DEBOUNCE_SECONDS, required=False)
    knowledge_auto = serializers.BooleanField(required=False)
    pii_redaction = PiiRedactionSerializer(required=False)
    pii_patterns = PiiPatternSerializer(many=True, required=False, max_length=50)
    # Whether the model takes images: null = as known for the model (gpt-4o, gpt-4.1, Claude… do).
    model_accepts_images = serializers.BooleanField(required=False, allow_null=True)
    # The model for turns with images when the agent's own takes none; null for none.
    vision_model = VisionModelSerializer(required=False, allow_null=True)
    reply_threading = serializers.ChoiceField(choices=ReplyThreading.values, required=False)
    history_ttl_hours = serializers.IntegerField(min_value=1, max_value=24 * 365, required=False, allow_null=True)
    created_at = serializers.DateTimeField(read_only=True)

    def validate_tools(self, tools: list[str]) -> list[str]:
        if len(set(tools)) != len(tools):
            raise serializers.ValidationError("Each tool may be listed only once.")
        return tools

    def validate_fallback_model(self, value):
        return dict(value) if value is not None else None

    def validate_pii_redaction(self, value):
        return dict(value)

    def validate_pii_patterns(self, value):
        return [dict(pattern) for pattern in value]
    def validate_vision_model(self, value):
        return dict(value) if value is not None else {}


# --- Connections -------------------------------------------------------------------------------


class ConnectionSerializer(serializers.ModelSerializer):
    """Never carries the webhook secret, the Kapso ids or the last error text of the connection."""

    agent = serializers.UUIDField(source="agent_id", read_only=True, allow_null=True)
    setup_url = serializers.SerializerMethodField()

    class Meta:
        model = WhatsAppConnection
        fields = ["id", "status", "environment", "phone_number_id", "display_phone_number", "agent", "agent_enabled",
                  "resume_after_minutes", "business_hours", "agent_only_outside_hours", "allowed_contacts",
                  "not_allowed_text", "setup_url", "created_at"]
        read_only_fields = fields

    def get_setup_url(self, connection: WhatsAppConnection) -> str | None:
        # A pending connection whose link was replaced by a newer one has no usable link left.
        if connection.status == ConnectionStatus.PENDING_SETUP and connection.setup_link_url:
            return connection.setup_link_url
        return None


class ConnectionCreateSerializer(StrictSerializer):
    environment = serializers.ChoiceField(choices=NUMBER_ENVIRONMENTS)


class ConnectionUpdateSerializer(StrictSerializer):
    agent = serializers.PrimaryKeyRelatedField(
        queryset=Agent.objects.none(), allow_null=True, required=False, pk_field=serializers.UUIDField(),
        # The same words for an unknown id and another org's: the answer never tells them apart.
        error_messages={"does_not_exist": "There is no agent with the id {pk_value} in this organization."},
    )
    agent_enabled = serializers.BooleanField(required=False)
    resume_after_minutes = serializers.IntegerField(min_value=1, max_value=60 * 24 * 30, required=False,
                                                    allow_null=True)
    business_hours = serializers.JSONField(required=False)
    agent_only_outside_hours = serializers.BooleanField(required=False)
    allowed_contacts = phone_list(required=False)
    not_allowed_text = serializers.CharField(max_length=1000, required=False, allow_blank=True)

    def __init__(self, *args, org: Organization | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        # No org only when the schema generator describes the shape: then no agent matches.
        if org is not None:
            self.fields["agent"].queryset = agent_list(org=org)

    def validate(self, data: dict) -> dict:
        if not data:
            raise serializers.ValidationError(
                "Send `agent` (an agent id, or null for none), `agent_enabled`, `resume_after_minutes`, "
                "`business_hours`, `agent_only_outside_hours`, `allowed_contacts` and/or `not_allowed_text`."
            )
        return data


# --- Threads and messages ----------------------------------------------------------------------


class ThreadSerializer(serializers.ModelSerializer):
    connection = serializers.UUIDField(source="connection_id", read_only=True)
    # A contact who adopted a WhatsApp username may have no known number: then only the BSUID.
    contact_phone = serializers.CharField(read_only=True, allow_null=True)
    # True after the contact wrote STOP (until START): nothing can be sent to them.
    opted_out = serializers.BooleanField(read_only=True)
    contact_bsuid = serializers.SerializerMethodField()
    contact_username = serializers.SerializerMethodField()

    class Meta:
        model = Thread
        fields = ["id", "connection", "external_id", "contact_name", "contact_phone", "contact_bsuid",
                  "contact_username", "handoff", "opted_out", "last_message_at"]
        read_only_fields = fields

    def get_contact_bsuid(self, thread: Thread) -> str | None:
        return thread.contact_bsuid or None

    def get_contact_username(self, thread: Thread) -> str | None:
        return thread.contact_username or None


class CatchUpSerializer(serializers.Serializer):
    found = serializers.IntegerField(help_text="Missed messages ingested from Kapso's history.")
    answered = serializers.IntegerField(help_text="Of those, handed to the agent.")
    flagged = serializers.IntegerField(help_text="Of those, too old to answer: marked for a person.")


class ThreadFilterSerializer(serializers.Serializer):
    connection = serializers.UUIDField(required=False)


class MessageSerializer(serializers.ModelSerializer):
    class Meta:
        model = Message
        fields = ["id", "direction", "author", "type", "text", "reply_to_wamid", "status", "wamid", "error_code",
                  "error_text", "created_at"]
        read_only_fields = fields


class ThreadUpdateSerializer(StrictSerializer):
    """`{handoff: "human"}` takes the conversation over (the agent stops answering); `"agent"` gives
    it back, and the agent answers what the contact wrote meanwhile."""

    handoff = serializers.ChoiceField(choices=Handoff.choices)


class RunSerializer(serializers.ModelSerializer):
    """One agent turn. `model` is the model that answered ({provider, name}: the agent's own, or its
    fallback_model when the primary failed); `redactions` counts the personal data replaced, per
    place ({"input": {"CARD": 1}, "output": {...}})."""

    agent = serializers.UUIDField(source="agent_id", read_only=True, allow_null=True)

    class Meta:
        model = AgentRun
        fields = ["id", "agent", "status", "error", "model", "redactions", "input_tokens", "output_tokens",
                  "attempts", "created_at", "started_at", "finished_at"]
        read_only_fields = fields


class TemplateSendSerializer(StrictSerializer):
    """An approved template of the thread's number: its name, language and variables in order."""

    name = serializers.CharField(max_length=512)
    language = serializers.CharField(max_length=16)
    variables = serializers.ListField(child=serializers.CharField(max_length=1024, allow_blank=True), max_length=100,
                                      required=False, default=list)


class ReplySerializer(StrictSerializer):
    """Free text `{text}`, or `{template: {name, language, variables}}` (also outside the window),
    or a photo or document as multipart/form-data: `file` with an optional `caption`."""

    text = serializers.CharField(max_length=MAX_REPLY_CHARS, required=False)
    template = TemplateSendSerializer(required=False)
    file = serializers.FileField(required=False, help_text="A JPEG or PNG photo (up to 5 MB) or a PDF, Word, Excel, "
                                                           "PowerPoint or text document, as multipart/form-data.")
    caption = serializers.CharField(max_length=1024, required=False, allow_blank=True,
                                    help_text="Shown under the photo or document.")

    def validate(self, data):
        given = [name for name in ("text", "template", "file") if name in data]
        if len(given) > 1:
            raise serializers.ValidationError({given[1]: f"Send one of `text`, `template` or `file`, not "
                                                         f"{' and '.join(f'`{name}`' for name in given)}."})
        if not given:
            raise serializers.ValidationError({"text": "Write a message (`text`), send a `template`, or a `file`."})
        if "caption" in data and "file" not in data:
            raise serializers.ValidationError({"caption": "A caption goes with a `file`."})
        return data


class TemplateSerializer(serializers.ModelSerializer):
    variables = serializers.SerializerMethodField()

    class Meta:
        model = MessageTemplate
        fields = ["name", "language", "status", "category", "parameter_format", "variables", "components",
                  "synced_at"]
        read_only_fields = fields

    def get_variables(self, template: MessageTemplate) -> list[str]:
        return template_variables(template)


# --- Schedules ---------------------------------------------------------------------------------


class ScheduleSerializer(StrictSerializer):
    """The agent runs `prompt` for `contact` every `every_minutes`, or daily `at` (HH:MM in the
    organization's `time_zone`), and sends the answer: as text inside WhatsApp's 24-hour window,
    outside it only as `template` (an approved template of the number; `{{reply}}` in a variable
    becomes the agent's answer), else the run is skipped. `last_result` and `last_reason` say what
    the last run did and why it was skipped or failed."""

    id = serializers.UUIDField(read_only=True)
    contact = serializers.CharField(max_length=32, help_text="The contact's number in international format.")
    prompt = serializers.CharField(max_length=4000, help_text="What the agent should do at each run: an instruction "
                                                              "from the business, not a message from the contact.")
    every_minutes = serializers.IntegerField(min_value=1, max_value=43200, required=False, allow_null=True)
    at = serializers.TimeField(format="%H:%M", input_formats=["%H:%M"], required=False, allow_null=True,
                               help_text="HH:MM, every day, in the organization's time zone.")
    template = TemplateSendSerializer(required=False, allow_null=True)
    time_zone = serializers.CharField(source="org.time_zone", read_only=True)
    enabled = serializers.BooleanField(read_only=True)
    next_run_at = serializers.DateTimeField(read_only=True)
    last_run_at = serializers.DateTimeField(read_only=True, allow_null=True)
    last_result = serializers.CharField(read_only=True, help_text="sent, template, skipped, failed, running or empty.")
    last_reason = serializers.CharField(read_only=True)
    created_at = serializers.DateTimeField(read_only=True)


# --- Knowledge ---------------------------------------------------------------------------------


class KnowledgeSourceSerializer(serializers.Serializer):
    """A source of an agent's knowledge. An FAQ entry reads as `question`/`answer`; the text of a
    file or web page is not repeated here (it can be large): `characters` tells its size."""

    id = serializers.UUIDField(read_only=True)
    kind = serializers.CharField(read_only=True)
    title = serializers.CharField(read_only=True)
    question = serializers.SerializerMethodField()
    answer = serializers.SerializerMethodField()
    text = serializers.SerializerMethodField()
    url = serializers.CharField(read_only=True)
    filename = serializers.CharField(read_only=True)
    status = serializers.CharField(read_only=True)
    error = serializers.CharField(read_only=True)
    characters = serializers.SerializerMethodField()
    fetched_at = serializers.DateTimeField(read_only=True, allow_null=True)
    created_at = serializers.DateTimeField(read_only=True)

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_question(self, source) -> str | None:
        return source.title if source.kind == "faq" else None

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_answer(self, source) -> str | None:
        return source.text if source.kind == "faq" else None

    @extend_schema_field(serializers.CharField(allow_null=True, help_text="The text of a `text` source."))
    def get_text(self, source) -> str | None:
        return source.text if source.kind == "text" else None

    def get_characters(self, source) -> int:
        return len(source.text)


class KnowledgeCreateSerializer(StrictSerializer):
    """`{"kind": "faq", "question", "answer"}`, `{"kind": "text", "title", "text"}`, `{"kind": "url", "url"}`;
    a file as multipart (`file`, optional `title`, `kind` "file" or absent)."""

    kind = serializers.ChoiceField(choices=["faq", "text", "url", "file"], required=False)
    question = serializers.CharField(required=False, allow_blank=True, trim_whitespace=True)
    answer = serializers.CharField(required=False, allow_blank=True, trim_whitespace=True)
    title = serializers.CharField(required=False, allow_blank=True)
    text = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False)
    url = serializers.CharField(required=False, allow_blank=True, max_length=2000)
    file = serializers.FileField(required=False)

    def validate(self, data: dict) -> dict:
        if "file" in data:
            data.setdefault("kind", "file")
        if data.get("kind") is None:
            raise serializers.ValidationError({"kind": ["Say which kind of source this is: faq, text, url or file."]})
        if data["kind"] == "file" and "file" not in data:
            raise serializers.ValidationError({"file": ["Send the file as multipart/form-data in the `file` field."]})
        return data


# --- Contacts ----------------------------------------------------------------------------------


class ContactAttributeSerializer(StrictSerializer):
    id = serializers.UUIDField(read_only=True)
    name = serializers.CharField(max_length=40, help_text="The key in a contact's `attributes`, like lead_status.")
    type = serializers.ChoiceField(choices=["text", "number", "boolean", "date", "email"], required=False,
                                   default="text")
    agent_writable = serializers.BooleanField(required=False, default=False,
                                              help_text="Whether the agent's contact.update may set it.")
    created_at = serializers.DateTimeField(read_only=True)


class ContactSerializer(StrictSerializer):
    id = serializers.UUIDField(read_only=True)
    name = serializers.CharField(max_length=200, required=False, allow_blank=True)
    phone = serializers.CharField(read_only=True)
    bsuid = serializers.CharField(read_only=True)
    attributes = serializers.DictField(required=False, help_text="Attribute name → value; null removes one.")
    last_seen_at = serializers.DateTimeField(read_only=True, allow_null=True)
    created_at = serializers.DateTimeField(read_only=True)


class ContactFilterSerializer(serializers.Serializer):
    q = serializers.CharField(required=False, max_length=100, help_text="Part of the name or number.")
    attribute = serializers.CharField(required=False, max_length=40, help_text="Only contacts with this attribute…")
    value = serializers.CharField(required=False, max_length=500, allow_blank=True, help_text="…equal to this value.")


# --- The organization's model budget and own provider keys ----------------------------------------


class BudgetUsageSerializer(serializers.Serializer):
    month = serializers.DateTimeField(help_text="The start of the month counted (UTC).")
    tokens = serializers.IntegerField(help_text="Input and output tokens on the platform's keys this month.")
    cost = serializers.DecimalField(max_digits=14, decimal_places=2,
                                    help_text="Money spent this month, counting models priced by the platform.")


class BudgetSerializer(StrictSerializer):
    """The monthly model budget on the platform's keys (runs on the organization's own keys don't
    count); null is no limit. When it is used up the agents stop: each contact who writes gets the
    agent's fallback text once, and the owners are emailed."""

    monthly_token_budget = serializers.IntegerField(min_value=1, max_value=10**15, allow_null=True, required=False)
    monthly_cost_budget = serializers.DecimalField(
        max_digits=12, decimal_places=2, min_value=0, allow_null=True, required=False,
        help_text="Money a month; counts only models the platform has a price for.")
    usage = BudgetUsageSerializer(read_only=True)
    exhausted_reason = serializers.CharField(
        read_only=True, allow_null=True, help_text="Why the agents are stopped, or null while the budget lasts.")

    def validate(self, data: dict) -> dict:
        if not data:
            raise serializers.ValidationError(
                "Send `monthly_token_budget` and/or `monthly_cost_budget` (null: no limit).")
        return data


OWN_KEY_PROVIDERS = [p for p in PROVIDERS if p != "offline"]


class ProviderKeySerializer(StrictSerializer):
    """One of the organization's own keys. Sent once; afterwards only its last 4 characters are shown."""

    id = serializers.UUIDField(read_only=True)
    provider = serializers.ChoiceField(
        choices=OWN_KEY_PROVIDERS,
        error_messages={"invalid_choice": f'Unknown provider "{{input}}"; use one of: {", ".join(OWN_KEY_PROVIDERS)}.'},
    )
    key = serializers.CharField(write_only=True, max_length=500, help_text="The provider's API key; never returned.")
    last4 = serializers.CharField(read_only=True, help_text="The key's last 4 characters, to recognise it.")
    created_at = serializers.DateTimeField(read_only=True)
    updated_at = serializers.DateTimeField(read_only=True)

    def validate_key(self, key: str) -> str:
        problem = provider_key_problem(key)
        if problem:
            raise serializers.ValidationError(problem)
        return key
