"""Dashboard forms. Validation a person can trip over says what to do, in plain words."""

from django import forms
from django.contrib.auth import get_user_model, password_validation
from django.contrib.auth.forms import AuthenticationForm
from django.utils.text import slugify

from apps.agents.llm import PROVIDERS
from apps.agents.models import Agent
from apps.agents.tools import all_tools
from apps.orgs.models import Role
from apps.whatsapp.models import Environment

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
        choices=Environment.choices, initial=Environment.PRODUCTION,
        help_text="Development numbers are for testing; production numbers talk to real customers.",
    )


class AssignAgentForm(forms.Form):
    agent = forms.ModelChoiceField(
        queryset=Agent.objects.none(), required=False, empty_label="No agent (people answer)"
    )

    def __init__(self, *args, org, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["agent"].queryset = Agent.objects.filter(org=org).order_by("name")


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

    allowed_numbers = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 2}), required=False, label="Other numbers the agent may reach",
        help_text="One per line, like +15551234567. Empty (recommended): the agent only reads and messages the "
                  "person it is talking to.",
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
        return data

    @staticmethod
    def initial_for(agent: Agent) -> dict:
        fields = ("name", "slug", "system_prompt", "model_provider", "model_name", "temperature", "max_tokens",
                  "tools", "fallback_text")
        return {**{name: getattr(agent, name) for name in fields}, "allowed_numbers": "\n".join(agent.allowed_numbers)}


class ReplyForm(forms.Form):
    text = forms.CharField(max_length=16_384, strip=True, error_messages={"required": "Write a message first."})


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
