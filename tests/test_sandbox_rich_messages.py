# ruff: noqa: F811 - pytest fixtures imported from tests/test_sandbox_switchboard.py
"""The sandbox's part of templates, media, taps and quotes: what its phone page sends reaches
Switchboard in Kapso's shapes, and it lists templates and accepts template sends."""

from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from apps.agents.tasks import run_turn
from apps.conversations.media import media_store
from apps.conversations.models import Message, Thread
from apps.conversations.services import operator_media_send, template_send
from apps.conversations.tasks import outbox_drain
from apps.kapso import client as kapso
from apps.kapso.errors import KapsoError
from apps.whatsapp.models import MessageTemplate
from apps.whatsapp.templates import templates_sync
from sandbox import services
from sandbox.models import Media, PhoneNumber
from sandbox.models import Message as SandboxMessage
from tests.media_files import PNG
from tests.test_sandbox_switchboard import CONTACT, connected, queue  # noqa: F401, F811


def number_of(connection) -> PhoneNumber:
    return PhoneNumber.objects.get(phone_number_id=connection.phone_number_id)


def test_voice_notes_and_a_pdf_arrive_and_are_fetched(connected, queue, settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path)
    number = number_of(connected)
    services.contact_media_receive(number=number, contact=CONTACT, name="Alex", kind="audio",
                                   transcript="Hi, I need help with my order")
    services.contact_media_receive(number=number, contact=CONTACT, name="Alex", kind="audio")
    services.contact_media_receive(number=number, contact=CONTACT, name="Alex", kind="document")
    queue.run()

    with_transcript, without, pdf = Message.objects.filter(direction="inbound").order_by("created_at")
    assert with_transcript.media["transcript"] == "Hi, I need help with my order"
    assert "transcript" not in without.media
    for message in (with_transcript, without, pdf):
        media_store(message_id=message.id)
        message.refresh_from_db()
        assert message.media_status == "stored", message.media
    assert pdf.media["content_type"] == "application/pdf" and pdf.media_file.read().startswith(b"%PDF")


def test_taps_and_a_quote_arrive_with_the_message_they_answer(connected, queue):
    number = number_of(connected)
    services.contact_message_receive(number=number, contact=CONTACT, name="Alex", text="Hi")
    queue.run()
    run_turn(str(Message.objects.get().run_id))
    outbox_drain(str(Thread.objects.get().pk))
    reply = Message.objects.get(direction="outbound")

    services.contact_taps(number=number, contact=CONTACT, name="Alex", list_reply=False)
    services.contact_taps(number=number, contact=CONTACT, name="Alex", list_reply=True)
    services.contact_quotes(number=number, contact=CONTACT, name="Alex", text="Is that right?")
    queue.run()

    button, row, quote = Message.objects.filter(direction="inbound").order_by("created_at")[1:]
    assert button.media["choice"] == {"kind": "button_reply", "id": "btn_yes", "title": "Yes"}
    assert row.media["choice"]["id"] == "row_express" and row.text == "Express Shipping (1-2 business days)"
    assert {button.reply_to_wamid, row.reply_to_wamid, quote.reply_to_wamid} == {reply.wamid}


def test_it_lists_templates_and_takes_a_template_outside_the_window(connected, queue):
    connected.business_account_id = connected.business_account_id or "102290129340398"
    connected.save()
    assert templates_sync(connection=connected) == 2
    assert set(MessageTemplate.objects.values_list("name", flat=True)) == {"order_update", "follow_up"}
    number = number_of(connected)
    services.contact_message_receive(number=number, contact=CONTACT, name="Alex", text="Hi", emit=False,
                                     at=timezone.now() - timedelta(days=2))
    thread = Thread.objects.create(org=connected.org, connection=connected, external_id=f"whatsapp:{CONTACT}",
                                   contact_phone=CONTACT, last_inbound_at=timezone.now() - timedelta(days=2))

    template_send(thread=thread, name="follow_up", language="en_US", variables=["Alex"])
    outbox_drain(str(thread.pk))

    sent = Message.objects.get(direction="outbound")
    assert sent.status == "sent", (sent.error_code, sent.error_text)
    stored = SandboxMessage.objects.get(wamid=sent.wamid)
    assert stored.type == "template" and stored.content["name"] == "follow_up"


def test_an_operators_photo_is_uploaded_to_the_sandbox_and_sent_by_media_id(connected, queue, client):
    number = number_of(connected)
    services.contact_message_receive(number=number, contact=CONTACT, name="Alex", text="Which shelf?")
    queue.run()
    thread = Thread.objects.get()
    photo = SimpleUploadedFile("shelf.png", PNG, content_type="image/png")

    operator_media_send(thread=thread, file=photo, caption="This one")
    outbox_drain(str(thread.pk))

    sent = Message.objects.get(direction="outbound")
    assert sent.status == "sent", (sent.error_code, sent.error_text)
    stored = SandboxMessage.objects.get(wamid=sent.wamid)
    upload = Media.objects.get(phone_number=number)
    assert stored.type == "image" and stored.content == {"id": upload.media_id, "caption": "This one"}
    assert (bytes(upload.data), upload.mime_type, upload.filename) == (PNG, "image/png", "shelf.png")
    chat = client.get(f"/sandbox/phone/{number.phone_number_id}/chat", {"contact": CONTACT}).content.decode()
    assert f'src="/sandbox/media-files/{upload.media_id}"' in chat
    assert client.get(f"/sandbox/media-files/{upload.media_id}").content == PNG


def test_the_sandbox_refuses_a_typeless_upload_and_an_id_never_uploaded(connected, queue):
    number = number_of(connected)
    services.contact_message_receive(number=number, contact=CONTACT, name="Alex", text="Hi")
    queue.run()

    with pytest.raises(KapsoError) as typeless:
        kapso.upload_media(phone_number_id=number.phone_number_id, content=b"%PDF-1.4", filename="a.pdf",
                           content_type="application/octet-stream")
    with pytest.raises(KapsoError) as unknown:
        kapso.send_message(phone_number_id=number.phone_number_id, to=CONTACT,
                           content={"type": "image", "image": {"id": "1234567890123456"}})

    assert typeless.value.status == 400 and "Param file must be a file with one of" in str(typeless.value)
    assert unknown.value.status == 400 and "was not uploaded" in str(unknown.value)
