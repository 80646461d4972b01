"""The sandbox's pages: Kapso's hosted setup page, and a phone page per number where a person
chats as a WhatsApp contact and can make the next sends fail or redeliver a webhook.

These are for people on this machine; the sandbox is never mounted in production.
"""

import uuid
from urllib.parse import urlencode

from django.contrib import messages as flash
from django.http import Http404, HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from apps.core.queue import enqueue

from . import conf, delivery, services
from .models import Delivery, FailureKind, Message, PhoneNumber, SetupLink, SetupLinkStatus, Webhook

DEFAULT_CONTACT = "15551234567"
DEFAULT_NAME = "Alex (sandbox contact)"


@require_GET
def index(request):
    numbers = PhoneNumber.objects.select_related("customer").order_by("-created_at")
    links = SetupLink.objects.filter(status=SetupLinkStatus.ACTIVE).select_related("customer")[:10]
    return render(request, "sandbox/index.html", {
        "numbers": numbers, "links": links, "project_webhook": delivery.default_project_webhook(),
        "deliveries": Delivery.objects.exclude(status="buffering").select_related("webhook")[:15],
        "api_base": request.build_absolute_uri("/sandbox").rstrip("/"), "api_key_pinned": bool(conf.api_key()),
    })


# --- Hosted setup page (docs/kapso.md §2.2–2.4) -----------------------------------------------------


def setup(request, token: str):
    link = SetupLink.objects.select_related("customer").filter(token=token).first()
    if link is None:
        raise Http404("No such setup link")
    services.setup_link_refresh(link)
    if link.status != SetupLinkStatus.ACTIVE:
        code = "already_used" if link.status == SetupLinkStatus.USED else "link_expired"
        return _finish_failed(request, link, code, f"This setup link is {link.status}.")
    if request.method == "POST":
        if request.POST.get("action") == "cancel":
            return _finish_failed(request, link, "facebook_auth_failed", "You cancelled the signup.")
        try:
            services.setup_link_complete(link_id=link.id, normalized=request.POST.get("number", ""),
                                         coexistence=request.POST.get("connection_type") == "coexistence")
        except services.Refused as refused:
            flash.error(request, refused.body.get("error", "That did not work."))
            return redirect("sandbox:setup", token=token)
        link.refresh_from_db()
        return _finish_completed(request, link)
    types = link.options.get("allowed_connection_types") or ["coexistence", "dedicated"]
    return render(request, "sandbox/setup.html", {
        "link": link, "numbers": services.setup_offered_numbers(link), "connection_types": types,
        "reconnect": bool(link.options.get("reconnect_phone_number")),
    })


def _finish_completed(request, link: SetupLink):
    """Kapso sends the browser to the success URL with the documented parameters (§2.3)."""
    number = link.phone_number
    params = {"setup_link_id": str(link.id), "status": "completed", "phone_number_id": number.phone_number_id,
              "business_account_id": number.business_account_id,
              "display_phone_number": f"+{number.normalized}"}
    if link.options.get("provision_phone_number"):
        params["provisioned_phone_number_id"] = str(number.internal_id)
    target = link.options.get("success_redirect_url")
    if target:
        return HttpResponseRedirect(_with_query(target, params))
    return render(request, "sandbox/setup_done.html", {"link": link, "number": number})


def _finish_failed(request, link: SetupLink, code: str, reason: str):
    target = link.options.get("failure_redirect_url")
    if target:
        return HttpResponseRedirect(_with_query(target, {"setup_link_id": str(link.id), "error_code": code}))
    return render(request, "sandbox/setup_failed.html", {"link": link, "code": code, "reason": reason}, status=410)


def _with_query(url: str, params: dict) -> str:
    return f"{url}{'&' if '?' in url else '?'}{urlencode(params)}"


# --- The phone page --------------------------------------------------------------------------


def _number(phone_number_id: str) -> PhoneNumber:
    return get_object_or_404(PhoneNumber, phone_number_id=phone_number_id)


def _contact(source) -> tuple[str, str]:
    contact = services.digits(source.get("contact")) or DEFAULT_CONTACT
    if not 6 <= len(contact) <= 15:
        contact = DEFAULT_CONTACT
    return contact, (source.get("name") or DEFAULT_NAME).strip()[:100]


def _phone_url(number: PhoneNumber, contact: str, name: str) -> str:
    return reverse("sandbox:phone", args=[number.phone_number_id]) + "?" + urlencode({"contact": contact, "name": name})


def _chat_context(number: PhoneNumber, contact: str, name: str) -> dict:
    history = list(
        Message.objects.filter(phone_number=number, conversation__contact_phone=contact).order_by("-id")[:100]
    )[::-1]
    return {"number": number, "contact": contact, "name": name, "chat": history,
            "window_open": services.window_open(number=number, contact=contact)}


@require_GET
def phone(request, phone_number_id: str):
    number = _number(phone_number_id)
    contact, name = _contact(request.GET)
    webhooks = list(Webhook.objects.filter(phone_number=number))
    context = {
        **_chat_context(number, contact, name),
        "webhooks": webhooks, "buffering": any(w.buffer_enabled for w in webhooks),
        "buffer_window": next((w.buffer_window_seconds for w in webhooks if w.buffer_enabled), 5),
        "failure_kinds": FailureKind.choices, "deliveries": _deliveries(number),
        "contact_display": services.format_us(contact),
    }
    return render(request, "sandbox/phone.html", context)


@require_GET
def phone_chat(request, phone_number_id: str):
    """The chat, polled by the page. `seen=1`: the person is looking at it, so replies become read."""
    number = _number(phone_number_id)
    contact, name = _contact(request.GET)
    if request.GET.get("seen") == "1":
        services.contact_reads(number=number, contact=contact)
    return render(request, "sandbox/_chat.html", _chat_context(number, contact, name))


@require_POST
def phone_send(request, phone_number_id: str):
    number = _number(phone_number_id)
    contact, name = _contact(request.POST)
    text = (request.POST.get("text") or "").strip()
    if text:
        services.contact_message_receive(number=number, contact=contact, name=name, text=text[:4096])
    if request.headers.get("X-Sandbox-Fragment"):
        return render(request, "sandbox/_chat.html", _chat_context(number, contact, name))
    return redirect(_phone_url(number, contact, name))


@require_POST
def phone_business_reply(request, phone_number_id: str):
    number = _number(phone_number_id)
    contact, name = _contact(request.POST)
    text = (request.POST.get("text") or "").strip()
    if text:
        services.business_app_message_send(number=number, contact=contact, text=text[:4096])
        flash.success(request, "Sent from the WhatsApp Business app: Kapso reports it with origin business_app.")
    return redirect(_phone_url(number, contact, name))


@require_POST
def phone_failures(request, phone_number_id: str):
    number = _number(phone_number_id)
    contact, name = _contact(request.POST)
    kind = request.POST.get("kind", "")
    count = services.digits(request.POST.get("count")) or "0"
    retry_after = services.digits(request.POST.get("retry_after")) or "60"
    if kind and kind not in FailureKind.values:
        flash.error(request, "Unknown failure kind.")
    else:
        services.failure_arm(number=number, kind=kind, count=int(count) if kind else 0, retry_after=int(retry_after))
        label = dict(FailureKind.choices).get(kind)
        flash.success(request, f"The next {count} send(s) will answer {label}." if kind
                      else "Sends work normally again.")
    return redirect(_phone_url(number, contact, name))


@require_POST
def phone_buffering(request, phone_number_id: str):
    number = _number(phone_number_id)
    contact, name = _contact(request.POST)
    enabled = request.POST.get("enabled") == "1"
    window = max(1, min(60, int(services.digits(request.POST.get("window")) or "5")))
    services.webhook_set_buffering(number=number, enabled=enabled, window=window)
    flash.success(request, f"Received messages are now batched per {window} s." if enabled else "Batching is off.")
    return redirect(_phone_url(number, contact, name))


def _deliveries(number: PhoneNumber):
    return (Delivery.objects.filter(phone_number_id=number.phone_number_id)
            .exclude(status="buffering").select_related("webhook")[:20])


@require_GET
def phone_deliveries(request, phone_number_id: str):
    number = _number(phone_number_id)
    contact, name = _contact(request.GET)
    return render(request, "sandbox/_deliveries.html", {
        "deliveries": _deliveries(number), "number": number, "next": _phone_url(number, contact, name)})


@require_POST
def phone_delete(request, phone_number_id: str):
    number = _number(phone_number_id)
    services.phone_number_delete(number=number)
    flash.success(request, f"{number.display_phone_number} was removed: whatsapp.phone_number.deleted is on its way.")
    return redirect("sandbox:index")


@require_POST
def delivery_redeliver(request, delivery_id: str):
    """Send a delivery again, same bytes and same X-Idempotency-Key: Switchboard must treat it as a
    duplicate. Done by a task so this request never waits on Switchboard."""
    from .tasks import redeliver_webhook

    found = Delivery.objects.filter(pk=delivery_id).first() if _is_uuid(delivery_id) else None
    if found is None:
        raise Http404("No such delivery")
    enqueue(redeliver_webhook, str(found.id))
    flash.success(request, f"Redelivering {found.event} ({str(found.id)[:8]}…) with the same idempotency key.")
    next_url = request.POST.get("next") or ""
    # Only back to a sandbox page: never an open redirect.
    return redirect(next_url if next_url.startswith("/sandbox/") else "sandbox:index")


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


TRAFFIC_DONE = {
    "username": "The contact wrote with a WhatsApp username: no number, a BSUID instead.",
    "history": "Kapso imported three old messages (origin history_sync).",
    "photo": "The contact sent a photo: the webhook has only Meta's media id, no kapso.media_url.",
    "voice": "The contact sent a voice note without Kapso's transcript.",
    "voice_transcript": "The contact sent a voice note with Kapso's transcript.",
    "pdf": "The contact sent a PDF (invoice.pdf).",
    "tap_button": "The contact tapped the reply button “Yes”.",
    "tap_list": "The contact picked “Express Shipping” from a list.",
    "quote": "The contact answered quoting the last reply.",
    "react": "The contact reacted to the last reply.",
    "unreact": "The contact removed their reaction (an empty emoji).",
    "kapso_inbox": "Sent from Kapso's inbox: whatsapp.message.sent with origin cloud_api, a wamid Switchboard "
                   "never sent.",
    "readd": "Removed: whatsapp.phone_number.deleted now (the number's webhooks are gone), "
             "whatsapp.phone_number.created in 5 seconds.",
    "outage": "Outage on: every delivery for this number fails; Kapso gives up after its retries.",
    "outage_end": "Outage over: deliveries go through again (the ones Kapso gave up on stay failed).",
}


@require_POST
def phone_traffic(request, phone_number_id: str):
    """The traffic beyond Kapso's samples (the "Real traffic" card): one button per case."""
    number = _number(phone_number_id)
    contact, name = _contact(request.POST)
    action = request.POST.get("action", "")
    text = (request.POST.get("text") or "").strip()[:4096]
    if action == "username":
        username = "@" + ((request.POST.get("username") or "").strip().lstrip("@") or "jane")[:60]
        services.contact_message_receive(number=number, contact=contact, name=name, text=text or "Hi!",
                                         username=username)
    elif action == "photo":
        services.contact_photo_receive(number=number, contact=contact, name=name, caption=text)
    elif action in ("voice", "voice_transcript", "pdf"):
        transcript = "Hi, I need help with my order" if action == "voice_transcript" else ""
        services.contact_media_receive(number=number, contact=contact, name=name,
                                       kind="document" if action == "pdf" else "audio", transcript=transcript)
    elif action in ("tap_button", "tap_list"):
        services.contact_taps(number=number, contact=contact, name=name, list_reply=action == "tap_list")
    elif action == "quote":
        if services.contact_quotes(number=number, contact=contact, name=name, text=text or "Is that right?") is None:
            flash.error(request, "There is no reply to quote yet.")
            return redirect(_phone_url(number, contact, name))
    elif action == "history":
        services.history_import(number=number, contact=contact, name=name)
    elif action in ("react", "unreact"):
        if services.contact_reacts(number=number, contact=contact, name=name,
                                   emoji="\U0001f44d" if action == "react" else "") is None:
            flash.error(request, "There is no reply to react to yet.")
            return redirect(_phone_url(number, contact, name))
    elif action == "kapso_inbox":
        services.business_app_message_send(number=number, contact=contact, text=text or "Hi, this is Maria.",
                                           origin="cloud_api")
    elif action == "readd":
        services.phone_number_readd(number=number)
    elif action in ("outage", "outage_end"):
        minutes = float(services.digits(request.POST.get("minutes")) or "5") if action == "outage" else 0
        services.outage_start(number=number, minutes=minutes)
    else:
        flash.error(request, "Unknown action.")
        return redirect(_phone_url(number, contact, name))
    flash.success(request, TRAFFIC_DONE[action])
    return redirect(_phone_url(number, contact, name))
