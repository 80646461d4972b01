"""Tenant budgets and limits on the platform's model keys.

- A monthly budget per organization, in tokens and (for models priced in MODEL_PRICES) money. Runs
  answered on the organization's own key (a ProviderKey) are not counted. When it runs out, the
  agent stops for that organization: each contact who writes gets the agent's fallback text once a
  month, and the owners are told by email (once) and on the dashboard.
- Voice-note transcription counts too (AgentRun.media_usage, written when the turn transcribes):
  tokens when the transcription model reports them (priced like any model in MODEL_PRICES, as
  "openai:<TRANSCRIPTION_MODEL>"), and minutes of audio when it bills by duration, as whisper-1
  does (priced at TRANSCRIPTION_PRICE_PER_MINUTE; minutes count only in money). Image turns
  count as the turn of the vision model they are.
- A turn stops at the budget between model steps: a turn that uses it up does not make another call.
- A loop breaker per contact: at most AGENT_MAX_TURNS_PER_CONTACT_PER_HOUR turns of one thread an hour.
- MODEL_ALLOWLIST and MODEL_MAX_TOKENS bound what an agent may be set to (checked when it is saved).
"""

import logging
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.core.mail import send_mail
from django.db.models import Sum
from django.urls import reverse
from django.utils import timezone

from apps.core.crypto import decrypt
from apps.orgs.models import Membership, Organization, ProviderKey, Role

from .models import AgentRun, RunStatus

logger = logging.getLogger(__name__)
MILLION = Decimal(1_000_000)


def month_start(now: datetime | None = None) -> datetime:
    now = now or timezone.now()
    return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def org_usage(*, org: Organization) -> dict:
    """This month's tokens and money on the platform's keys."""
    runs = AgentRun.objects.filter(org=org, created_at__gte=month_start())
    rows = runs.filter(own_key=False).values("model").annotate(input=Sum("input_tokens"), output=Sum("output_tokens"))
    tokens, cost = 0, Decimal(0)
    for row in rows:
        tokens += (row["input"] or 0) + (row["output"] or 0)
        cost += run_cost(row["model"] or {}, row["input"] or 0, row["output"] or 0)
    for usage in runs.filter(media_usage__transcription__own_key=False).values_list(
            "media_usage__transcription", flat=True):
        used_tokens, used_cost = transcription_cost(usage)
        tokens, cost = tokens + used_tokens, cost + used_cost
    return {"tokens": tokens, "cost": cost.quantize(Decimal("0.01"))}


def transcription_cost(usage: dict) -> tuple[int, Decimal]:
    """(tokens, money) of a turn's transcription usage: {model, seconds?, input_tokens?, output_tokens?}."""
    model = {"provider": "openai", "name": usage.get("model", "")}
    input_tokens, output_tokens = int(usage.get("input_tokens") or 0), int(usage.get("output_tokens") or 0)
    minutes = Decimal(str(usage.get("seconds") or 0)) / 60
    per_minute = Decimal(str(settings.TRANSCRIPTION_PRICE_PER_MINUTE))
    return input_tokens + output_tokens, run_cost(model, input_tokens, output_tokens) + minutes * per_minute


def run_cost(model: dict, input_tokens: int, output_tokens: int) -> Decimal:
    """MODEL_PRICES: {"provider:name": [input, output]} in money per million tokens; unpriced costs 0."""
    price = settings.MODEL_PRICES.get(f"{model.get('provider')}:{model.get('name')}")
    if not price:
        return Decimal(0)
    return (Decimal(str(price[0])) * input_tokens + Decimal(str(price[1])) * output_tokens) / MILLION


def budget_exhausted(*, org: Organization, spent_tokens: int = 0, spent_cost: Decimal = Decimal(0)) -> str:
    """Why the organization's budget is used up, in words for its owners; '' while it is not.
    `spent_*`: what the running turn used so far on the platform's keys (written when it ends)."""
    if org.monthly_token_budget is None and org.monthly_cost_budget is None:
        return ""
    usage = org_usage(org=org)
    usage = {"tokens": usage["tokens"] + spent_tokens, "cost": usage["cost"] + spent_cost}
    if org.monthly_token_budget is not None and usage["tokens"] >= org.monthly_token_budget:
        return (
            f"This month's model budget of {org.monthly_token_budget:,} tokens is used up ({usage['tokens']:,} used)."
        )
    if org.monthly_cost_budget is not None and usage["cost"] >= org.monthly_cost_budget:
        return f"This month's model budget of {org.monthly_cost_budget} is used up ({usage['cost']} spent)."
    return ""


def budget_alerted_this_month(org: Organization) -> bool:
    return org.budget_exhausted_at is not None and org.budget_exhausted_at >= month_start()


def owners_alert(*, org: Organization, reason: str) -> None:
    """Tell the owners once a month: an email, and the flag the dashboard shows."""
    claimed = (
        Organization.objects.filter(pk=org.pk)
        .exclude(budget_exhausted_at__gte=month_start())
        .update(budget_exhausted_at=timezone.now())
    )
    if not claimed:
        return  # already told this month (the conditional update makes it once across workers)
    emails = list(Membership.objects.filter(org=org, role=Role.OWNER).values_list("user__email", flat=True))
    link = settings.PUBLIC_BASE_URL + reverse("usage", kwargs={"org_slug": org.slug})
    send_mail(
        subject=f"{org.name}: your agents stopped — the monthly model budget is used up",
        message=(
            f"{reason}\n\nYour agents no longer answer on WhatsApp this month; each customer who writes "
            f"gets the agent's fallback text once. Raise the budget or add your own provider key:\n{link}\n"
        ),
        from_email=None,
        recipient_list=[e for e in emails if e],
    )
    logger.warning("org %s: model budget used up; owners told", org.slug)


def thread_fallback_due(*, thread) -> bool:
    """The contact has not yet had the fallback text for this month's exhausted budget."""
    from apps.conversations.models import Thread

    return bool(
        Thread.objects.filter(pk=thread.pk)
        .exclude(budget_notice_at__gte=month_start())
        .update(budget_notice_at=timezone.now())
    )


def turns_last_hour(*, thread) -> int:
    since = timezone.now() - timedelta(hours=1)
    finished = [RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.TIMED_OUT]
    return AgentRun.objects.filter(thread=thread, created_at__gte=since, status__in=finished).count()


# --- The organization's own keys ------------------------------------------------------------------


def provider_key_for(*, org_id, provider: str) -> str | None:
    """The organization's own key for this provider, decrypted, or None (then the platform's)."""
    row = ProviderKey.objects.filter(org_id=org_id, provider=provider).only("encrypted_key").first()
    return decrypt(row.encrypted_key) if row else None


def transcription_key(*, org_id) -> str | None:
    """The organization's own `openai` key for voice notes, when transcription goes to the openai
    provider (TRANSCRIPTION_BASE_URL unset): an org's key is never sent to another service."""
    if settings.TRANSCRIPTION_BASE_URL:
        return None
    return provider_key_for(org_id=org_id, provider="openai")


def with_org_key(model: dict, org_id) -> tuple[dict, bool]:
    """The model spec to call with: carrying the org's own key when it has one."""
    key = provider_key_for(org_id=org_id, provider=model.get("provider", ""))
    return ({**model, "api_key": key}, True) if key else (model, False)


# --- What an agent may be set to -------------------------------------------------------------------


def model_refusal(provider: str, name: str, max_tokens: int | None) -> tuple[str, str] | None:
    """(field, message) when the platform does not allow this model or max_tokens; else None."""
    allow = settings.MODEL_ALLOWLIST
    if allow and f"{provider}:{name}" not in allow and f"{provider}:*" not in allow:
        return "model_name", f"This platform allows only these models: {', '.join(allow)}."
    if max_tokens is not None and max_tokens > settings.MODEL_MAX_TOKENS:
        return "max_tokens", f"max_tokens can be at most {settings.MODEL_MAX_TOKENS:,} on this platform."
    return None
