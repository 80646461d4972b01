# ruff: noqa: F811 - fixtures imported from tests.test_dashboard_support are parameters here, as pytest wants
"""Operators send a photo or a document from the thread page (and the API): checked against
WhatsApp's types and sizes, kept in the media store, queued like any reply (the 24-hour window
applies), uploaded to Kapso through the Meta proxy (`POST /{phone_number_id}/media`) and sent by
media id; the bubble shows it."""

from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from apps.conversations.models import Message
from apps.conversations.tasks import outbox_drain
from tests.conftest import json_of
from tests.factories import make_thread
from tests.media_files import PNG, pdf_with_text
from tests.test_dashboard_support import operator, org_url, signed_in  # noqa: F401 - fixtures

pytestmark = pytest.mark.django_db
HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def thread(connection):
    return make_thread(connection, contact_name="Maria Lopez", last_inbound_at=timezone.now() - timedelta(hours=1))


def reply(client, org, thread, **data):
    return client.post(org_url("thread-reply", org, thread_id=thread.pk), data, **HTMX)


def test_an_operator_sends_a_photo_with_a_caption_and_kapso_gets_the_upload_then_the_media_id(
    client, org, operator, thread, kapso
):
    photo = SimpleUploadedFile("shelf.png", PNG, content_type="image/png")

    response = reply(signed_in(client, operator), org, thread, text="This one?", file=photo)

    assert response.status_code == 200 and "stream-sent" in response.headers.get("HX-Trigger", "")
    sent = Message.objects.get(direction="outbound")
    assert (sent.type, sent.author, sent.status, sent.media_status) == ("image", "operator", "queued", "stored")
    assert sent.media_file.read() == PNG and sent.media["caption"] == "This one?"
    assert sent.raw["sent_by"]  # who in the team sent it

    outbox_drain(str(thread.pk))

    (upload,) = kapso.uploads
    assert (upload["filename"], upload["content_type"], upload["content"]) == ("shelf.png", "image/png", PNG)
    (body,) = kapso.sent
    assert body["type"] == "image" and body["image"] == {"id": upload["id"], "caption": "This one?"}
    assert body["to"] == thread.contact_phone.lstrip("+") and body["messaging_product"] == "whatsapp"
    sent.refresh_from_db()
    assert sent.status == "sent" and sent.wamid == body["wamid"]
    page = client.get(org_url("thread", org, thread_id=thread.pk)).content.decode()
    media_url = org_url("message-media", org, thread_id=thread.pk, message_id=sent.pk)
    assert f'class="media-image" src="{media_url}"' in page and "This one?" in page
    assert client.get(media_url).getvalue() == PNG


def test_a_document_goes_with_its_file_name_and_a_retry_does_not_upload_it_again(
    client, org, operator, thread, kapso
):
    pdf = pdf_with_text("Quote 42: 2 chairs, 149 EUR")
    kapso.fail_next_send(500, {"error": {"message": "An unexpected error has occurred.", "code": 2}})

    reply(signed_in(client, operator), org, thread, text="",
          file=SimpleUploadedFile("quote-42.pdf", pdf, content_type="application/pdf"))
    outbox_drain(str(thread.pk))
    outbox_drain(str(thread.pk))  # the retry (no backoff in tests)

    (upload,) = kapso.uploads
    assert upload["content_type"] == "application/pdf" and upload["content"] == pdf
    (body,) = kapso.sent
    assert body["type"] == "document" and body["document"] == {"id": upload["id"], "filename": "quote-42.pdf"}
    sent = Message.objects.get(direction="outbound")
    assert sent.status == "sent" and sent.text == "[Document: quote-42.pdf]"
    assert "quote-42.pdf" in client.get(org_url("thread", org, thread_id=thread.pk)).content.decode()


@pytest.mark.parametrize(("name", "content", "content_type", "words"), [
    ("big.png", b"\x89PNG\r\n\x1a\n" + b"0" * (6 * 1024 * 1024 - 8), "image/png",
     "The photo is 6 MB; WhatsApp takes photos up to 5 MB."),
    ("cat.gif", b"GIF89a....", "image/gif", "WhatsApp cannot send this kind of file (cat.gif)"),
    ("setup.exe", b"MZ\x90\x00", "application/x-msdownload", "Send a JPEG or PNG photo, or a PDF"),
    ("fake.png", b"not a picture", "image/png", "fake.png is not a real PNG file."),
    ("empty.pdf", b"", "application/pdf", "The file is empty."),
])
def test_a_file_whatsapp_would_refuse_is_explained_and_nothing_is_queued(
    client, org, operator, thread, name, content, content_type, words
):
    response = reply(signed_in(client, operator), org, thread, text="",
                     file=SimpleUploadedFile(name, content, content_type=content_type))

    assert words in response.content.decode()
    assert not Message.objects.filter(direction="outbound").exists()


def test_outside_the_24_hour_window_a_photo_is_refused_like_free_text(client, org, operator, connection):
    closed = make_thread(connection, last_inbound_at=timezone.now() - timedelta(days=2))

    response = reply(signed_in(client, operator), org, closed, text="",
                     file=SimpleUploadedFile("shelf.png", PNG, content_type="image/png"))

    assert "more than 24 hours ago" in response.content.decode()
    assert not Message.objects.filter(direction="outbound").exists()


def test_the_api_sends_a_document_as_multipart_and_refuses_a_wrong_type(api, thread, kapso):
    url = f"/api/v1/threads/{thread.pk}/messages"
    pdf = pdf_with_text("Invoice 7")

    created = api.post(url, {"file": SimpleUploadedFile("invoice-7.pdf", pdf, content_type="application/pdf"),
                             "caption": "Your invoice"}, format="multipart")
    refused = api.post(url, {"file": SimpleUploadedFile("cat.gif", b"GIF89a", content_type="image/gif")},
                       format="multipart")
    both = api.post(url, {"file": SimpleUploadedFile("a.pdf", pdf, content_type="application/pdf"), "text": "hi"},
                    format="multipart")

    assert created.status_code == 201, created.content
    (message,) = json_of(created)["results"]
    assert (message["type"], message["status"], message["text"]) == ("document", "queued",
                                                                      "[Document: invoice-7.pdf] Your invoice")
    assert refused.status_code == 400 and "WhatsApp cannot send this kind of file" in json_of(refused)["file"][0]
    assert both.status_code == 400
    outbox_drain(str(thread.pk))
    (body,) = kapso.sent
    assert body["document"] == {"id": kapso.uploads[0]["id"], "filename": "invoice-7.pdf", "caption": "Your invoice"}
