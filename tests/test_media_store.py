# ruff: noqa: F811 - fixtures imported from tests.test_dashboard_support are parameters here, as pytest wants
"""The media store: inbound media fetched once through Kapso, kept in Django's storage, served to
the org's operators through Switchboard and never through Kapso's expiring links."""

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.conversations import media
from apps.conversations.models import Message
from apps.conversations.tasks import media_fetch, sweep_media
from tests.test_dashboard_support import org_url, outsider, owner, signed_in  # noqa: F401 - fixtures

pytestmark = pytest.mark.django_db
RECEIVED = "whatsapp.message.received"
JPEG = b"\xff\xd8\xff\xe0" + b"photo-bytes" * 100
PDF = b"%PDF-1.4 fake invoice"


def _receive(post_webhook, payload) -> Message:
    response = post_webhook("messages", payload, secret="conn-secret", event=RECEIVED)
    assert response.status_code == 200, response.content
    return Message.objects.get(wamid=payload["message"]["id"])


def _image_payload(kapso_payload, media_url: str | None):
    payload = kapso_payload("whatsapp.message.received__image")
    if media_url is None:  # Kapso sent the message without its own stored copy
        del payload["message"]["kapso"]["media_url"], payload["message"]["kapso"]["media_data"]
    else:
        payload["message"]["kapso"]["media_url"] = media_url
        payload["message"]["kapso"]["media_data"]["url"] = media_url
    return payload


def test_the_webhook_only_marks_media_pending_and_calls_nobody(connection, kapso, post_webhook, kapso_payload):
    message = _receive(post_webhook, _image_payload(kapso_payload, kapso.add_media("photo.jpg", JPEG, "image/jpeg")))

    assert message.media_status == "pending"
    assert message.media["id"] == "1371993794424264"
    assert kapso.requests == []  # fetched by a task, never inside Kapso's webhook request


def test_it_keeps_a_copy_of_kapsos_stored_file(connection, kapso, post_webhook, kapso_payload):
    message = _receive(post_webhook, _image_payload(kapso_payload, kapso.add_media("photo.jpg", JPEG, "image/jpeg")))

    media_fetch(str(message.pk))

    message.refresh_from_db()
    assert message.media_status == "stored"
    assert message.media_file.read() == JPEG
    assert message.media["byte_size"] == len(JPEG) and message.media["content_type"] == "image/jpeg"
    assert message.media_file.name.endswith("/photo.jpg")
    (download,) = kapso.requests_to("GET", r"^/media/photo.jpg")
    assert download["headers"].get("X-API-Key") == "test-kapso-key"  # Kapso's own host: the key may go along


def test_without_a_media_url_it_goes_through_the_media_id_and_its_download_url(
    connection, kapso, post_webhook, kapso_payload
):
    kapso.media_ids["1371993794424264"] = (JPEG, "image/jpeg")
    message = _receive(post_webhook, _image_payload(kapso_payload, None))

    media_fetch(str(message.pk))

    message.refresh_from_db()
    assert message.media_status == "stored" and message.media_file.read() == JPEG
    (lookup,) = kapso.requests_to("GET", r"^/meta/whatsapp/v24.0/1371993794424264\?")
    assert "phone_number_id=123456789012345" in lookup["path"]
    assert kapso.requests_to("GET", r"^/meta/whatsapp/media_download\?token=")


def test_an_expired_media_url_falls_back_to_the_media_id(connection, kapso, post_webhook, kapso_payload):
    kapso.media_ids["1371993794424264"] = (JPEG, "image/jpeg")
    message = _receive(post_webhook, _image_payload(kapso_payload, f"{kapso.url}/media/gone.jpg"))

    media_fetch(str(message.pk))

    message.refresh_from_db()
    assert message.media_status == "stored" and message.media_file.read() == JPEG


def test_a_media_url_outside_kapso_is_never_fetched(connection, kapso, post_webhook, kapso_payload):
    kapso.media_ids["1371993794424264"] = (JPEG, "image/jpeg")
    message = _receive(post_webhook, _image_payload(kapso_payload, "http://169.254.169.254/latest/meta-data"))

    media_fetch(str(message.pk))

    message.refresh_from_db()
    assert message.media_status == "stored"  # through the media id instead
    assert not [r for r in kapso.requests if "latest" in r["path"]]


def test_a_file_over_the_cap_is_not_kept(connection, kapso, post_webhook, kapso_payload, settings):
    settings.MEDIA_MAX_BYTES = 100
    message = _receive(post_webhook, _image_payload(kapso_payload, kapso.add_media("photo.jpg", JPEG, "image/jpeg")))

    media_fetch(str(message.pk))

    message.refresh_from_db()
    assert message.media_status == "failed" and not message.media_file
    assert "too large" in message.media["error"]


def test_kapso_trouble_leaves_it_pending_for_the_sweeper_then_gives_up(
    connection, kapso, post_webhook, kapso_payload, settings
):
    settings.MEDIA_FETCH_STALE_SECONDS = 0
    kapso.media_ids = {}  # the lookup answers 404, as for an expired media id
    message = _receive(post_webhook, _image_payload(kapso_payload, None))
    settings.KAPSO_API_BASE_URL = "http://127.0.0.1:9"  # Kapso unreachable: transient

    media_fetch(str(message.pk))
    message.refresh_from_db()
    assert message.media_status == "pending" and message.media["attempts"] == 1
    assert media.media_pending_stale(older_than=timedelta(0)) == [message.pk]

    for _ in range(2):
        media_fetch(str(message.pk))
    message.refresh_from_db()
    assert message.media_status == "failed"
    assert "Kapso did not hand over the file" in message.media["error"]


def test_a_message_that_was_already_stored_is_not_fetched_again(connection, kapso, post_webhook, kapso_payload):
    message = _receive(post_webhook, _image_payload(kapso_payload, kapso.add_media("photo.jpg", JPEG, "image/jpeg")))
    media_fetch(str(message.pk))

    media_fetch(str(message.pk))
    media.media_store(message_id=message.pk)

    assert len(kapso.requests_to("GET", r"^/media/")) == 1


def test_copies_past_the_retention_period_are_deleted(connection, kapso, post_webhook, kapso_payload, settings):
    message = _receive(post_webhook, _image_payload(kapso_payload, kapso.add_media("photo.jpg", JPEG, "image/jpeg")))
    media_fetch(str(message.pk))
    message.refresh_from_db()
    storage, name = message.media_file.storage, message.media_file.name
    Message.objects.filter(pk=message.pk).update(created_at=timezone.now() - timedelta(days=91))
    settings.MEDIA_RETENTION_DAYS = 90

    sweep_media()

    message.refresh_from_db()
    assert message.media_status == "expired" and not message.media_file
    assert not storage.exists(name)
    assert message.text  # the message and its description stay


# --- Served to operators -------------------------------------------------------------------------


@pytest.fixture
def stored(connection, kapso, post_webhook, kapso_payload):
    def store(payload) -> Message:
        message = _receive(post_webhook, payload)
        media_fetch(str(message.pk))
        message.refresh_from_db()
        return message

    return store


def _media_url(message, org=None):
    return org_url("message-media", org or message.org, thread_id=message.thread_id, message_id=message.pk)


def test_members_see_the_stored_image_through_switchboard(client, owner, kapso, stored, kapso_payload):
    message = stored(_image_payload(kapso_payload, kapso.add_media("photo.jpg", JPEG, "image/jpeg")))

    response = signed_in(client, owner).get(_media_url(message))

    assert response.status_code == 200
    assert b"".join(response.streaming_content) == JPEG
    assert response["Content-Type"] == "image/jpeg"
    assert response["X-Content-Type-Options"] == "nosniff"
    page = client.get(org_url("thread", message.org, thread_id=message.thread_id)).content.decode()
    assert _media_url(message) in page
    assert "api.kapso.ai" not in page and kapso.url not in page  # never Kapso's expiring link


def test_a_document_is_a_download_not_a_page(client, owner, kapso, stored, kapso_payload):
    payload = _image_payload(kapso_payload, kapso.add_media("invoice.html", PDF, "text/html"))
    payload["message"]["type"] = "document"
    payload["message"]["document"] = {"id": "42", "filename": "invoice.html", "mime_type": "text/html"}
    payload["message"]["kapso"]["media_data"].update(filename="invoice.html", content_type="text/html")
    message = stored(payload)

    response = signed_in(client, owner).get(_media_url(message))

    assert response.status_code == 200
    assert response["Content-Type"] == "application/octet-stream"
    assert response["Content-Disposition"].startswith("attachment;")


def test_strangers_and_other_tenants_get_nothing(client, outsider, other_org, kapso, stored, kapso_payload):
    message = stored(_image_payload(kapso_payload, kapso.add_media("photo.jpg", JPEG, "image/jpeg")))

    assert client.get(_media_url(message)).status_code == 302  # to the sign-in page
    signed_in(client, outsider)
    assert client.get(_media_url(message)).status_code == 404
    assert client.get(_media_url(message, org=other_org)).status_code == 404


def test_a_file_not_stored_is_a_clear_404(client, owner, kapso, connection, post_webhook, kapso_payload):
    message = _receive(post_webhook, _image_payload(kapso_payload, None))  # still pending

    response = signed_in(client, owner).get(_media_url(message))

    assert response.status_code == 404
    assert b"not stored in Switchboard" in response.content
