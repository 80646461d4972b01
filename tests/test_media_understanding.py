"""What the model gets of a contact's media: image content (OpenAI and Anthropic formats) when the
model takes images, a vision_model otherwise, voice-note transcripts, documents' text, quotes."""

import base64
import copy
from decimal import Decimal

import pytest
from django.utils import timezone

from apps.agents import budget, llm, services
from apps.agents.models import AgentRun
from apps.agents.tasks import run_turn
from apps.conversations.models import Message
from apps.conversations.services import inbound_messages_record
from apps.kapso.payloads import parse_inbound
from apps.orgs.services import provider_key_set
from tests.fakes.kapso_server import fixture
from tests.fakes.model_servers import AnthropicServer, OpenAIServer
from tests.media_files import PNG, docx_with_text, pdf_with_text

pytestmark = pytest.mark.django_db(transaction=True)


def receive(connection, payload) -> str:
    payload = copy.deepcopy(payload)
    payload["message"]["timestamp"] = str(int(timezone.now().timestamp()))
    recorded = inbound_messages_record(connection=connection, messages=[parse_inbound(payload)])
    [(thread_id, (_, ids))] = recorded.items()
    return str(
        services.run_request(
            org_id=connection.org_id, thread_id=thread_id, agent_id=connection.agent_id, message_ids=ids
        )
    )


def media_payload(name: str, kapso, *, content: bytes, content_type: str, filename: str, **message) -> dict:
    payload = copy.deepcopy(fixture(name))
    url = kapso.add_media(filename, content, content_type)
    payload["message"]["kapso"].update(
        media_url=url,
        media_data={"url": url, "filename": filename, "content_type": content_type, "byte_size": len(content)},
    )
    payload["message"].update(message)
    return payload


def image_payload(kapso):
    return media_payload(
        "whatsapp.message.received__image", kapso, content=PNG, content_type="image/png", filename="part.png"
    )


@pytest.fixture
def openai(openai, agent):
    agent.model_name = "gpt-4o"  # a model that accepts images
    agent.save()
    openai.default = None
    return openai


def last_user_content(body: dict):
    return [m for m in body["messages"] if m["role"] == "user"][-1]["content"]


def test_an_image_reaches_an_openai_vision_model_as_image_content(connection, kapso, openai):
    openai.reply_text("That is the right part.")

    run_turn(receive(connection, image_payload(kapso)))

    content = last_user_content(openai.requests[0].body)
    text, image = content
    assert text["type"] == "text" and "Is this the right part?" in text["text"]
    assert image == {
        "type": "image_url",
        "image_url": {"url": "data:image/png;base64," + base64.b64encode(PNG).decode()},
    }
    assert Message.objects.get(direction="inbound").media_status == "stored"  # fetched once, by the turn


def test_an_image_reaches_claude_as_a_base64_image_block(connection, kapso, agent, settings):
    with AnthropicServer() as server:
        settings.ANTHROPIC_BASE_URL, settings.ANTHROPIC_API_KEY = server.url, "sk-ant-test"
        agent.model_provider, agent.model_name = "anthropic", "claude-sonnet-4-5"
        agent.save()
        server.reply_text("Yes.")

        run_turn(receive(connection, image_payload(kapso)))

        blocks = server.requests[0].body["messages"][-1]["content"]
    assert {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": base64.b64encode(PNG).decode()},
    } in blocks


def test_a_model_without_vision_gets_a_description(connection, kapso, openai, agent):
    agent.model_name = "gpt-3.5-turbo"
    agent.save()
    openai.reply_text("I cannot see images.")

    run_turn(receive(connection, image_payload(kapso)))

    content = last_user_content(openai.requests[0].body)
    assert isinstance(content, str) and content.startswith("[Image: part.png]")


def test_a_turn_with_an_image_goes_to_the_vision_model_when_the_agents_model_takes_none(
    connection, kapso, openai, agent
):
    agent.model_name, agent.vision_model = "gpt-3.5-turbo", {"provider": "openai", "name": "gpt-4.1-mini"}
    agent.save()
    openai.reply_text("That is the right part.")

    run_turn(receive(connection, image_payload(kapso)))

    body = openai.requests[0].body
    assert body["model"] == "gpt-4.1-mini"
    assert last_user_content(body)[1]["type"] == "image_url"


def test_the_vision_capability_can_be_set_per_agent(agent):
    assert llm.accepts_images({"provider": "openai", "name": "gpt-4o-mini"})
    assert llm.accepts_images({"provider": "anthropic", "name": "claude-3-5-haiku-latest"})
    assert not llm.accepts_images({"provider": "groq", "name": "llama-3.1-8b-instant"})
    agent.model_provider, agent.model_name, agent.model_accepts_images = "ollama", "my-own-vlm", True
    assert llm.accepts_images(agent.model)
    agent.model_name, agent.model_accepts_images = "gpt-4o", False
    assert not llm.accepts_images(agent.model)


def test_a_voice_note_without_a_transcript_is_transcribed_and_its_text_reaches_the_model(connection, kapso, openai):
    payload = media_payload(
        "whatsapp.message.received__audio_transcript",
        kapso,
        content=b"OggS fake opus",
        content_type="audio/ogg",
        filename="voice.ogg",
    )
    del payload["message"]["kapso"]["transcript"]
    payload["message"]["kapso"]["content"] = "[Audio attached] (voice.ogg)"
    openai.transcript = "Where is my parcel?"
    openai.reply_text("It ships today.")

    run_turn(receive(connection, payload))

    (transcription,) = openai.transcriptions
    assert transcription.path == "/v1/audio/transcriptions"
    assert 'name="model"\r\n\r\nwhisper-1' in transcription.body and "OggS fake opus" in transcription.body
    assert "Transcript: Where is my parcel?" in last_user_content(openai.requests[0].body)
    assert Message.objects.get(direction="inbound").media["transcript"] == "Where is my parcel?"  # shown to operators


def voice_note(kapso) -> dict:
    payload = media_payload("whatsapp.message.received__audio_transcript", kapso, content=b"OggS fake opus",
                            content_type="audio/ogg", filename="voice.ogg")
    del payload["message"]["kapso"]["transcript"]
    return payload


def test_transcription_counts_toward_the_organizations_budget_in_minutes_or_tokens(
    connection, kapso, openai, settings, org
):
    settings.TRANSCRIPTION_PRICE_PER_MINUTE = "0.006"
    settings.MODEL_PRICES = {"openai:gpt-4o": [0, 0], "openai:gpt-4o-transcribe": [2000, 10000]}
    openai.reply_text("It ships today.", input_tokens=0, output_tokens=0)

    run_id = receive(connection, voice_note(kapso))
    run_turn(run_id)

    usage = AgentRun.objects.get(pk=run_id).media_usage["transcription"]
    assert usage == {"model": "whisper-1", "own_key": False, "seconds": 30}
    assert budget.org_usage(org=org) == {"tokens": 0, "cost": Decimal("0.00")}  # 0.003 rounds to 0.00
    settings.TRANSCRIPTION_MODEL = "gpt-4o-transcribe"
    openai.transcription_usage = {"type": "tokens", "input_tokens": 100, "output_tokens": 20, "total_tokens": 120}
    openai.reply_text("Noted.", input_tokens=0, output_tokens=0)
    second = voice_note(kapso)
    second["message"]["id"] = "wamid.voice.second"

    run_turn(receive(connection, second))

    # 120 tokens; 100 × 2000 + 20 × 10000 per million = 0.40; plus whisper's half minute (0.003).
    assert budget.org_usage(org=org) == {"tokens": 120, "cost": Decimal("0.40")}


def test_voice_notes_and_images_use_the_organizations_own_key_and_are_not_counted(
    connection, kapso, openai, agent, org
):
    provider_key_set(org=org, provider="openai", key="sk-org-own-1234")
    agent.model_name, agent.vision_model = "gpt-3.5-turbo", {"provider": "openai", "name": "gpt-4.1-mini"}
    agent.save()
    openai.reply_text("It ships today.")
    openai.reply_text("That is the right part.")

    run_turn(receive(connection, voice_note(kapso)))
    run_turn(receive(connection, image_payload(kapso)))

    assert openai.transcriptions[0].headers["authorization"] == "Bearer sk-org-own-1234"
    vision = openai.requests[-1]
    assert vision.body["model"] == "gpt-4.1-mini" and vision.headers["authorization"] == "Bearer sk-org-own-1234"
    runs = AgentRun.objects.order_by("created_at")
    assert runs[0].media_usage["transcription"]["own_key"] is True and all(r.own_key for r in runs)
    assert budget.org_usage(org=org) == {"tokens": 0, "cost": Decimal("0.00")}


def test_a_voice_note_is_not_transcribed_on_the_platforms_key_once_the_budget_is_used_up(
    connection, kapso, openai, org, settings
):
    org.monthly_cost_budget = Decimal("0.00")
    org.save()
    # The agent answers on the organization's own key; transcription goes to a service of the
    # platform's (TRANSCRIPTION_BASE_URL), where the organization's key is never sent.
    provider_key_set(org=org, provider="openai", key="sk-org-own-1234")
    settings.TRANSCRIPTION_BASE_URL = openai.url + "/v1"
    openai.reply_text("Sorry, I could not listen to that.")

    run_turn(receive(connection, voice_note(kapso)))

    assert openai.transcriptions == [] and len(openai.requests) == 1
    assert "budget" in Message.objects.get(direction="inbound").media["transcript_error"]


def test_kapsos_transcript_is_used_as_it_is(connection, kapso, openai):
    payload = media_payload(
        "whatsapp.message.received__audio_transcript",
        kapso,
        content=b"OggS",
        content_type="audio/ogg",
        filename="voice.ogg",
    )
    payload["message"]["kapso"]["transcript"] = {"text": "Hello, I need help with my order"}
    openai.reply_text("Sure.")

    run_turn(receive(connection, payload))

    assert openai.transcriptions == []
    assert "Transcript: Hello, I need help with my order" in last_user_content(openai.requests[0].body)


def test_transcription_goes_where_the_settings_say(connection, kapso, openai, settings):
    with OpenAIServer() as whisper:
        settings.TRANSCRIPTION_BASE_URL, settings.TRANSCRIPTION_MODEL = whisper.url + "/v1", "whisper-large-v3"
        whisper.transcript = "Call me back"
        payload = media_payload(
            "whatsapp.message.received__audio_transcript",
            kapso,
            content=b"OggS",
            content_type="audio/ogg",
            filename="voice.ogg",
        )
        del payload["message"]["kapso"]["transcript"]
        openai.reply_text("Will do.")

        run_turn(receive(connection, payload))

        assert openai.transcriptions == [] and "whisper-large-v3" in whisper.transcriptions[0].body
    assert "Call me back" in last_user_content(openai.requests[0].body)


def test_a_pdfs_text_reaches_the_model_with_its_file_name(connection, kapso, openai):
    payload = media_payload(
        "whatsapp.message.received__image",
        kapso,
        content=pdf_with_text("Invoice 1234 total 56 EUR"),
        content_type="application/pdf",
        filename="invoice.pdf",
        type="document",
        document={"id": "555", "filename": "invoice.pdf", "mime_type": "application/pdf"},
    )
    openai.reply_text("Thanks for the invoice.")

    run_turn(receive(connection, payload))

    content = last_user_content(openai.requests[0].body)
    assert "Text of invoice.pdf:\nInvoice 1234 total 56 EUR" in content


def test_a_word_documents_text_reaches_the_model(connection, kapso, openai, settings):
    settings.MODEL_DOCUMENT_MAX_CHARS = 30
    docx_type = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
    payload = media_payload(
        "whatsapp.message.received__image",
        kapso,
        content=docx_with_text("Order 77: two chairs", "x" * 100),
        content_type=docx_type,
        filename="order.docx",
        type="document",
        document={"id": "556", "filename": "order.docx"},
    )
    openai.reply_text("Noted.")

    run_turn(receive(connection, payload))

    content = last_user_content(openai.requests[0].body)
    assert "Order 77: two chairs" in content and "x" * 20 not in content  # capped


def test_a_quoted_message_reaches_the_model_as_replying_to(connection, kapso, openai):
    openai.reply_text("First answer.")
    first = copy.deepcopy(fixture("whatsapp.message.received__text"))
    first["message"]["text"] = {"body": "Do you ship to Spain?"}
    run_turn(receive(connection, first))
    tap = copy.deepcopy(fixture("whatsapp.message.received__button_reply"))
    tap["message"]["context"]["id"] = first["message"]["id"]
    openai.reply_text("Great.")

    run_turn(receive(connection, tap))

    assert last_user_content(openai.requests[1].body) == (
        "(replying to: “Do you ship to Spain?”) [Tapped the button “Yes” (id: btn_yes)]"
    )


def test_a_list_reply_reaches_the_model_as_the_chosen_row(connection, openai):
    tap = copy.deepcopy(fixture("whatsapp.message.received__button_reply"))
    tap["message"]["interactive"] = {
        "type": "list_reply",
        "list_reply": {"id": "row_express", "title": "Express Shipping", "description": "1-2 business days"},
    }
    del tap["message"]["context"]
    openai.reply_text("Express it is.")

    run_turn(receive(connection, tap))

    assert last_user_content(openai.requests[0].body) == "[Tapped the list option “Express Shipping” (id: row_express)]"
    message = Message.objects.get(direction="inbound")
    assert message.text == "Express Shipping (1-2 business days)"  # what operators read


def test_a_video_and_a_sticker_reach_the_model_as_descriptions(connection, kapso, openai):
    """Even a model that takes images gets a video or a sticker as a description: its kind, file name
    and caption. Both are kept in the media store for operators."""
    video = media_payload("whatsapp.message.received__image", kapso, content=b"\x00\x00\x00\x18ftypmp42",
                          content_type="video/mp4", filename="clip.mp4", type="video",
                          video={"id": "777", "mime_type": "video/mp4", "caption": "It makes this noise"})
    sticker = media_payload("whatsapp.message.received__image", kapso, content=b"RIFF\x00\x00\x00\x00WEBPVP8 ",
                            content_type="image/webp", filename="sticker.webp", type="sticker",
                            id="wamid.HBgLMTU1NTEyMzQ1NjcVAgASGBRTVElDS0VSMDAwMDAwMDAwMDAxAA==",
                            sticker={"id": "778", "mime_type": "image/webp", "animated": False})
    for payload in (video, sticker):
        del payload["message"]["image"]
        payload["message"]["kapso"]["message_type_data"] = {}
        payload["message"]["timestamp"] = str(int(timezone.now().timestamp()))
    recorded = inbound_messages_record(connection=connection, messages=[parse_inbound(video), parse_inbound(sticker)])
    [(thread_id, (_, ids))] = recorded.items()
    openai.reply_text("Thanks, I'll look at it.")

    run_turn(str(services.run_request(org_id=connection.org_id, thread_id=thread_id, agent_id=connection.agent_id,
                                      message_ids=ids)))

    user = [m["content"] for m in openai.requests[0].body["messages"] if m["role"] == "user"]
    assert all(isinstance(content, str) for content in user), user  # no image part for either
    said = "\n".join(user)
    assert "[Video: clip.mp4] It makes this noise" in said and "[Sticker: sticker.webp]" in said
    assert list(Message.objects.filter(direction="inbound").values_list("type", "media_status")) == [
        ("video", "stored"), ("sticker", "stored")]
