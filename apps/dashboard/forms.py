"""Dashboard forms. Validation a person can trip over says what to do, in plain words."""

import re

from django import forms
from django.contrib.auth import get_user_model, password_validation
from django.contrib.auth.forms import AuthenticationForm
from django.utils.text import slugify

from apps.agents.llm import PROVIDERS
from apps.agents.models import Agent, AgentMode, ReplyThreading
from apps.agents.services import AGENT_EDITABLE_FIELDS, MAX_DEBOUNCE_SECONDS, MIN_TURN_TIMEOUT_SECONDS
from apps.agents.tools import all_tools
from apps.kapso.payloads import typed_phone
from apps.orgs.models import Role
from apps.orgs.services import provider_key_problem
from apps.whatsapp.models import NUMBER_ENVIRONMENTS, Environment

PROVIDER_LABELS = {
    "offline": "Offline demo model (no key, for trying things out)",
    "openai": "OpenAI",
    "anthropic": "Anthropic",
    "xai": "xAI (Grok)",
    "groq": "Groq",
    "openrouter": "OpenRouter",
    "ollama": "Ollama (self-hosted)",
}


class EmailAuthenticationForm(AuthenticationForm):
    """Sign in with email and password. Accounts use the email as their username, but an older
    account may not: the email is looked up first, case-insensitively."""

    username = forms.EmailField(
        label="Email", widget=forms.EmailInput(attrs={"autofocus": True, "autocomplete": "email"})
    )

    def clean(self):
        email = self.cleaned_data.get("username")
        if email:
            user = get_user_model().objects.filter(email__iexact=email).order_by("pk").first()
            if user is not None:
                self.cleaned_data["username"] = user.get_username()
        return super().clean()

    error_messages = {
        **AuthenticationForm.error_messages,
        "invalid_login": "That email and password don't match an account. Check them, or reset your password.",
    }


class ConnectForm(forms.Form):
    environment = forms.ChoiceField(
        choices=NUMBER_ENVIRONMENTS, initial=Environment.PRODUCTION,
        help_text="Development numbers are for testing; production numbers talk to real customers.",
    )


class AssignAgentForm(forms.Form):
    agent = forms.ModelChoiceField(
        queryset=Agent.objects.none(), required=False, empty_label="No agent (people answer)"
    )

    def __init__(self, *args, org, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["agent"].queryset = Agent.objects.filter(org=org).order_by("name")


class AllowedContactsForm(forms.Form):
    allowed_contacts = forms.CharField(
        required=False, label="Only answer these customers", widget=forms.Textarea(attrs={"rows": 3}),
        help_text="One number per line, like +15551234567. Leave empty to answer everyone who writes.",
    )
    not_allowed_text = forms.CharField(
        required=False, max_length=1000, label="Tell everyone else", widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Sent at most once a day to someone not on the list, e.g. “This number is for members only.” "
                  "Leave empty to stay silent. Their messages still show up in the inbox.",
    )

    def clean_allowed_contacts(self) -> list[str]:
        return phone_lines(self.cleaned_data.get("allowed_contacts", ""))


class AgentForm(forms.Form):
    name = forms.CharField(max_length=100)
    slug = forms.SlugField(
        max_length=60, required=False,
        help_text="A short id for the API, like <code>support-bot</code>. Left empty, it is made from the name.",
    )
    system_prompt = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 10, "spellcheck": "true"}), required=False,
        label="Instructions (system prompt)",
    )
    model_provider = forms.ChoiceField(choices=[(p, PROVIDER_LABELS.get(p, p)) for p in PROVIDERS], label="Provider")
    model_name = forms.CharField(
        max_length=100, label="Model", help_text="For example gpt-4o-mini, claude-sonnet-4-5 or grok-4-1-fast."
    )
    temperature = forms.FloatField(
        required=False, min_value=0, max_value=2,
        help_text="0 = predictable, 1 = varied. Empty uses the model's default.",
        widget=forms.NumberInput(attrs={"step": "0.1"}),
    )
    max_tokens = forms.IntegerField(required=False, min_value=1, max_value=200_000,
                                    help_text="Upper limit for one answer. Empty uses the model's default.")
    tools = forms.MultipleChoiceField(required=False, widget=forms.CheckboxSelectMultiple)
    fallback_text = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 2}), label="Fallback text",
        help_text="Sent to the customer when the model cannot answer (an outage, a bad key).",
    )

    # How the agent behaves in a conversation.
    acknowledgement_text = forms.CharField(
        required=False, max_length=1000, label="Acknowledgement",
        help_text="Sent the moment a message comes in, before the answer is ready, e.g. “Got it, one moment…”. "
                  "Leave empty to send nothing.",
    )
    typing_indicator = forms.BooleanField(
        required=False, label="Show “typing…”",
        help_text="The customer sees their message as read and “typing…” while the agent works on the answer.",
    )
    reset_command = forms.CharField(
        required=False, max_length=40, label="Start-over command",
        help_text="A customer who sends exactly this (like <code>/reset</code>) starts a fresh conversation: the "
                  "agent forgets what was said before. You still see everything. Empty turns it off.",
    )
    mode = forms.ChoiceField(
        choices=AgentMode.choices, label="Memory",
        help_text="Chat remembers the conversation. Task answers every message on its own, as if it were the first.",
    )
    debounce_seconds = forms.IntegerField(
        min_value=0, max_value=MAX_DEBOUNCE_SECONDS, label="Wait for the customer to finish (seconds)",
        help_text="People often send one thought in several short messages. The agent waits this long after the "
                  "last one and answers them all at once (a question is answered right away). 0 answers at once.",
    )
    history_window = forms.IntegerField(
        min_value=1, max_value=200, label="Messages remembered",
        help_text="How many of the latest messages the agent reads before answering.",
    )
    max_steps = forms.IntegerField(min_value=1, max_value=20, label="Tool steps per answer",
                                   help_text="How many times the agent may use its tools before it must answer.")
    history_ttl_hours = forms.IntegerField(
        required=False, min_value=1, max_value=24 * 365, label="Forget messages older than (hours)",
        help_text="Older messages stay in the inbox but the agent no longer reads them. Empty keeps them. When a "
                  "conversation outgrows the messages remembered, the agent keeps a short summary of the rest.",
    )
    max_input_chars = forms.IntegerField(
        required=False, min_value=1, label="Longest message read (characters)",
        help_text="Longer messages are cut, and the agent is told so. Empty reads everything.",
    )
    turn_timeout_seconds = forms.IntegerField(
        required=False, min_value=MIN_TURN_TIMEOUT_SECONDS, max_value=3600, label="Time limit per answer (seconds)",
        help_text=f"If an answer takes longer, the customer gets the fallback text instead. At least "
                  f"{MIN_TURN_TIMEOUT_SECONDS}; empty means no limit.",
    )
    pii_input = forms.BooleanField(
        required=False, label="Hide personal data from the model",
        help_text="Phone numbers, email addresses, card numbers and IBANs the customer writes reach the model as "
                  "placeholders like [CARD]. You still see the full message.",
    )
    pii_output = forms.BooleanField(
        required=False, label="Hide personal data in the agent's answers",
        help_text="The same placeholders in what the agent sends to the customer.",
    )
    pii_patterns = forms.CharField(
        required=False, label="Your own kinds of personal data", widget=forms.Textarea(attrs={"rows": 2}),
        help_text="One per line as <code>name: pattern</code> (a regular expression), like "
                  "<code>customer id: CUST-[0-9]+</code>, hidden as [CUSTOMER_ID].",
    )
    fallback_provider = forms.ChoiceField(
        required=False, label="Backup model provider",
        choices=[("", "No backup model")] + [(p, PROVIDER_LABELS.get(p, p)) for p in PROVIDERS],
        help_text="Asked when the main model still fails after its retries (an outage at the provider).",
    )
    fallback_name = forms.CharField(required=False, max_length=100, label="Backup model")
    # Photos customers send.
    model_accepts_images = forms.TypedChoiceField(
        required=False, label="Can the model see photos?", empty_value=None,
        choices=[("", "As known for this model"), ("yes", "Yes"), ("no", "No")],
        coerce=lambda value: {"yes": True, "no": False}.get(value),
        help_text="“As known” says yes for models that read images, such as OpenAI's gpt-4o and gpt-4.1 and "
                  "Anthropic's Claude models. Choose yes or no for a model we don't know.",
    )
    vision_provider = forms.ChoiceField(
        required=False, label="Photo model provider",
        choices=[("", "No photo model")] + [(p, PROVIDER_LABELS.get(p, p)) for p in PROVIDERS],
    )
    vision_name = forms.CharField(required=False, max_length=100, label="Photo model",
                                  help_text="For example gpt-4.1-mini or claude-haiku-4-5.")
    reply_threading = forms.ChoiceField(
        required=False, choices=ReplyThreading.choices, label="Quote the customer's message",
        help_text="A quoted reply shows the customer's message above the answer on their phone. “When answering an "
                  "earlier message” quotes only when the customer wrote again before the agent answered, so it is "
                  "clear which message the answer is for.",
    )
    allowed_numbers = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 2}), required=False, label="Other numbers the agent may reach",
        help_text="One per line, like +15551234567. Empty (recommended): the agent only reads and messages the "
                  "person it is talking to.",
    )

    knowledge_auto = forms.BooleanField(
        required=False, label="Look up the knowledge base before every answer",
        help_text="The best passages of this agent's knowledge are given to the model with each message.",
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["tools"].choices = [(name, name) for name in all_tools()]

    def clean_allowed_numbers(self) -> list[str]:
        # Checked and normalised by the agent service, which puts its message back on this field.
        return [line.strip() for line in self.cleaned_data["allowed_numbers"].replace(",", "\n").splitlines()
                if line.strip()]

    def clean(self):
        data = super().clean()
        if not data.get("slug") and data.get("name"):
            data["slug"] = slugify(data["name"])[:60] or "agent"
        provider, name = data.pop("fallback_provider", ""), (data.pop("fallback_name", "") or "").strip()
        if provider and not name:
            self.add_error("fallback_name", "Name the backup model, or choose “No backup model”.")
        data["fallback_model"] = {"provider": provider, "name": name} if provider and name else None
        provider, name = data.pop("vision_provider", ""), (data.pop("vision_name", "") or "").strip()
        if provider and not name:
            self.add_error("vision_name", "Name the photo model, or choose “No photo model”.")
        data["vision_model"] = {"provider": provider, "name": name} if provider and name else {}
        if not data.get("reply_threading"):
            data.pop("reply_threading", None)  # not on the page that posted: the agent keeps its own
        data["pii_redaction"] = {"input": data.pop("pii_input", False), "output": data.pop("pii_output", False)}
        return data

    def clean_pii_patterns(self) -> list[dict]:
        patterns = []
        for line in (self.cleaned_data.get("pii_patterns") or "").splitlines():
            if not line.strip():
                continue
            name, colon, pattern = line.partition(":")
            if not colon or not name.strip() or not pattern.strip():
                raise forms.ValidationError(f"“{line.strip()}”: write a name, a colon, then the pattern.")
            patterns.append({"name": name.strip(), "pattern": pattern.strip()})
        return patterns

    @staticmethod
    def initial_for(agent: Agent) -> dict:
        initial = {name: getattr(agent, name) for name in AGENT_FORM_FIELDS}
        initial["allowed_numbers"] = "\n".join(agent.allowed_numbers or [])
        fallback = agent.fallback_model or {}
        initial.update(fallback_provider=fallback.get("provider", ""), fallback_name=fallback.get("name", ""))
        vision = agent.vision_model or {}
        initial.update(vision_provider=vision.get("provider", ""), vision_name=vision.get("name", ""),
                       model_accepts_images={True: "yes", False: "no"}.get(agent.model_accepts_images, ""))
        pii = agent.pii_redaction or {}
        initial.update(pii_input=pii.get("input", False), pii_output=pii.get("output", False),
                       pii_patterns="\n".join(f"{p['name']}: {p['pattern']}" for p in agent.pii_patterns or []))
        return initial

    @staticmethod
    def initial_new() -> dict:
        defaults = {name: Agent._meta.get_field(name).get_default() for name in AGENT_FORM_FIELDS}
        # New agents wait 2 s for a burst to end (the API keeps 0, so existing integrations don't change).
        return {**defaults, "model_provider": "offline", "model_name": "demo", "tools": list(all_tools()),
                "debounce_seconds": NEW_AGENT_DEBOUNCE_SECONDS}


# The editable fields (one list: agents.services.AGENT_EDITABLE_FIELDS) that the form shows as they
# are; the others are typed differently on the page (numbers one per line, the backup and photo
# models as provider + name, whether the model sees photos as yes / no / as known).
AGENT_FORM_FIELDS = tuple(name for name in AGENT_EDITABLE_FIELDS
                          if name not in ("allowed_numbers", "fallback_model", "vision_model", "model_accepts_images"))
NEW_AGENT_DEBOUNCE_SECONDS = 2


def phone_lines(text: str) -> list[str]:
    """Numbers typed one per line (or separated by commas), as E.164; a clear error for the first bad one."""
    numbers = []
    for raw in re.split(r"[\n,;]+", text or ""):
        if not raw.strip():
            continue
        number = typed_phone(raw)
        if number is None:
            raise forms.ValidationError(
                f"“{raw.strip()}” is not a phone number in international format. Write it with a leading + and the "
                "country code, like +15551234567.")
        numbers.append(number)
    return list(dict.fromkeys(numbers))


class ReplyForm(forms.Form):
    """A reply: text, or a photo or document (`file`) with the text as its optional caption."""

    text = forms.CharField(max_length=16_384, strip=True, required=False)
    file = forms.FileField(required=False, error_messages={"empty": "The file is empty."})

    def clean(self):
        data = super().clean()
        if not self.errors and not data.get("text") and not data.get("file"):
            raise forms.ValidationError("Write a message first.")
        return data

    def first_error(self) -> str:
        return next(iter(self.errors.values()))[0]


class PlaygroundForm(forms.Form):
    text = forms.CharField(max_length=4096, strip=True, error_messages={"required": "Write a message first."})


class InviteForm(forms.Form):
    email = forms.EmailField()
    role = forms.ChoiceField(choices=Role.choices, initial=Role.OPERATOR)

    def __init__(self, *args, inviter_role: str, **kwargs):
        super().__init__(*args, **kwargs)
        if inviter_role != Role.OWNER:  # only owners make owners
            self.fields["role"].choices = [(Role.ADMIN, "Admin"), (Role.OPERATOR, "Operator")]


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices)


class ApiKeyForm(forms.Form):
    name = forms.CharField(max_length=100, initial="API key", help_text="Say where it is used, e.g. “CRM sync”.")


class JoinForm(forms.Form):
    """A new person accepting an invitation: their name and a password."""

    name = forms.CharField(max_length=150, label="Your name")
    password = forms.CharField(widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}))

    def __init__(self, *args, email: str, **kwargs):
        super().__init__(*args, **kwargs)
        self.email = email

    def clean_password(self):
        password = self.cleaned_data["password"]
        user = get_user_model()(username=self.email, email=self.email)
        password_validation.validate_password(password, user)
        return password


class BudgetForm(forms.Form):
    monthly_token_budget = forms.IntegerField(
        required=False, min_value=1, max_value=10**15, label="Tokens a month",
        help_text="Input and output tokens on the platform's keys. Empty: no limit.",
    )
    monthly_cost_budget = forms.DecimalField(
        required=False, min_value=0, max_digits=12, decimal_places=2, label="Spending a month",
        help_text="Counts only models the platform has a price for. Empty: no limit.",
    )


class ProviderKeyForm(forms.Form):
    provider = forms.ChoiceField(choices=[(p, PROVIDER_LABELS.get(p, p)) for p in PROVIDERS if p != "offline"])
    key = forms.CharField(
        max_length=500, label="API key", strip=True,
        widget=forms.PasswordInput(attrs={"autocomplete": "off"}),
        help_text="Stored encrypted. After saving, only its last 4 characters are shown.",
    )

    def clean_key(self) -> str:
        key = self.cleaned_data["key"]
        problem = provider_key_problem(key)
        if problem:
            raise forms.ValidationError(problem)
        return key
