"""Knowledge: sources through the API, full-text search, the safe page fetcher, and the agent's use."""

import io
import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from apps.agents.models import AgentRun
from apps.agents.tasks import run_turn
from apps.knowledge import services
from apps.knowledge.extract import chunk_text
from apps.knowledge.fetch import FetchError, public_address
from apps.knowledge.models import KnowledgeChunk, KnowledgeSource
from apps.knowledge.selectors import knowledge_search
from tests.conftest import json_of
from tests.factories import make_agent
from tests.fakes.model_servers import OpenAIServer
from tests.fakes.web_site import WebSite

pytestmark = pytest.mark.django_db


def url(agent, source=None) -> str:
    return f"/api/v1/agents/{agent.id}/knowledge" + (f"/{source}" if source else "")


def faq(agent, question, answer):
    return services.source_create(agent=agent, kind="faq", question=question, answer=answer)


# --- The API -----------------------------------------------------------------------------------


def test_it_adds_an_faq_entry_and_a_text_and_lists_them(api, agent):
    created = api.post(url(agent), {"kind": "faq", "question": "Do you ship abroad?",
                                    "answer": "Yes, to all EU countries in 3-5 days."}, format="json")
    text = api.post(url(agent), {"kind": "text", "title": "Returns", "text": "Returns are free for 30 days."},
                    format="json")

    assert (created.status_code, text.status_code) == (201, 201), created.content
    body = json_of(created)
    assert (body["kind"], body["question"], body["answer"], body["status"]) == (
        "faq", "Do you ship abroad?", "Yes, to all EU countries in 3-5 days.", "ready")
    listed = json_of(api.get(url(agent)))
    assert listed["count"] == 2 and listed["results"][0]["title"] == "Returns"
    assert KnowledgeChunk.objects.filter(agent=agent).count() == 2


def test_it_reads_uploaded_files_as_multipart(api, agent):
    import docx

    document = docx.Document()
    document.add_paragraph("Our shop opens at nine and closes at six.")
    buffer = io.BytesIO()
    document.save(buffer)
    files = {"report.docx": buffer.getvalue(), "notes.md": b"# Parking\n\nFree parking behind the shop.",
             "plain.txt": b"Gift cards never expire."}

    for name, data in files.items():
        response = api.post(url(agent), {"file": SimpleUploadedFile(name, data)}, format="multipart")
        assert response.status_code == 201, response.content
        assert json_of(response)["filename"] == name

    assert [p.title for p in knowledge_search(agent_id=agent.id, query="when do you open?")] == ["report.docx"]
    assert knowledge_search(agent_id=agent.id, query="parking")[0].text.endswith("Free parking behind the shop.")


def test_it_reads_a_pdf(agent):
    source = services.source_create(agent=agent, kind="file", filename="menu.pdf", data=_pdf("Paella costs 14 euros"))

    assert "Paella costs 14 euros" in source.text
    assert knowledge_search(agent_id=agent.id, query="how much is the paella")[0].source_id == str(source.id)


@pytest.mark.parametrize("body, field", [
    ({"kind": "faq", "question": "Hours?"}, "answer"),
    ({"kind": "text", "title": "", "text": "x"}, "title"),
    ({"kind": "url", "url": "ftp://example.com/file"}, "url"),
    ({"kind": "url", "url": "http://user:pw@example.com/"}, "url"),
    ({"kind": "recipe", "text": "x"}, "kind"),
    ({"question": "Hours?", "answer": "9-5"}, "kind"),
    ({"kind": "faq", "question": "Hours?", "answer": "9-5", "colour": "red"}, "colour"),
    ({"kind": "file"}, "file"),
])
def test_it_refuses_unusable_sources_and_stores_nothing(api, agent, body, field):
    response = api.post(url(agent), body, format="json")

    assert response.status_code == 400
    assert field in json_of(response)
    assert not KnowledgeSource.objects.exists()


def test_it_refuses_files_it_cannot_read(api, agent):
    response = api.post(url(agent), {"file": SimpleUploadedFile("photo.png", b"\x89PNG...")}, format="multipart")

    assert response.status_code == 400
    assert "PDF, DOCX, Markdown" in json_of(response)["file"][0]


def test_it_deletes_a_source_with_its_passages(api, agent):
    source = faq(agent, "Hours?", "9 to 5")

    assert api.delete(url(agent, source.id)).status_code == 204
    assert not KnowledgeChunk.objects.exists()
    assert api.delete(url(agent, source.id)).status_code == 404


def test_another_orgs_agent_and_sources_are_404(api, agent, other_org):
    theirs = make_agent(other_org)
    their_source = faq(theirs, "Secret?", "Theirs")

    assert api.get(url(theirs)).status_code == 404
    assert api.post(url(theirs), {"kind": "text", "title": "x", "text": "y"}, format="json").status_code == 404
    assert api.delete(url(theirs, their_source.id)).status_code == 404
    assert api.delete(url(agent, their_source.id)).status_code == 404
    assert KnowledgeSource.objects.filter(agent=theirs).count() == 1


# --- Search ------------------------------------------------------------------------------------


def test_search_finds_the_entry_sharing_the_most_words_even_with_different_word_forms(agent, other_org):
    faq(agent, "What are your opening hours?", "We open Monday to Friday, 9:00 to 18:00.")
    faq(agent, "Do you offer refunds?", "Refunds are paid within 14 days of the return.")
    faq(agent, "Where are you?", "Calle Mayor 1, Madrid.")
    faq(make_agent(other_org), "Opening hours of the other shop?", "Never.")

    [best, *_] = knowledge_search(agent_id=agent.id, query="can I get a refund??")
    assert best.title == "Do you offer refunds?"
    hours = knowledge_search(agent_id=agent.id, query="when are you open on friday")
    assert hours[0].title == "What are your opening hours?"
    assert all("other shop" not in p.title for p in hours)


@pytest.mark.parametrize("query", ["", "   ", "the a of", "') OR 1=1 --", "!!! & | :* <->", "x" * 5000])
def test_search_takes_any_text_without_error(agent, query):
    faq(agent, "Hours?", "9 to 5")

    assert isinstance(knowledge_search(agent_id=agent.id, query=query), list)


def test_long_texts_are_cut_into_passages_between_paragraphs_and_sentences():
    text = "\n\n".join(f"Paragraph {i}. " + "Word " * 150 for i in range(6))

    chunks = chunk_text(text, size=1000)

    assert all(len(c) <= 1000 for c in chunks) and len(chunks) >= 4
    assert chunks[0].startswith("Paragraph 0.")


# --- Web pages ---------------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "10.0.0.8", "192.168.1.1", "169.254.169.254", "::1",
                                  "0.0.0.0", "100.64.0.1"])
def test_private_and_local_addresses_are_refused(host):
    with pytest.raises(FetchError, match="Private, local and reserved"):
        public_address(host, 80)


def test_a_page_on_a_loopback_address_fails_with_a_clear_reason(agent):
    with WebSite({"/": (200, {"Content-Type": "text/html"}, b"<p>secret admin page</p>")}) as site:
        source = services.source_create(agent=agent, kind="url", url=site.url + "/")
        services.source_fetch(source_id=source.id)

    source.refresh_from_db()
    assert source.status == "failed" and "Private, local and reserved" in source.error
    assert site.requests == [] and not KnowledgeChunk.objects.exists()


def test_a_page_is_fetched_its_text_indexed_and_fetched_again_on_request(agent, settings):
    settings.KNOWLEDGE_URL_ALLOW_PRIVATE = True  # the test site lives on 127.0.0.1
    page = (b"<html><head><title>Delivery</title><style>.x{}</style></head><body><nav>Home | Shop</nav>"
            b"<h1>Delivery</h1><p>We deliver in Madrid within 24 hours.</p><script>var x=1</script></body></html>")
    pages = {"/old": (301, {"Location": "/delivery"}, b""), "/delivery": (200, {"Content-Type": "text/html"}, page)}
    with WebSite(pages) as site:
        source = services.source_create(agent=agent, kind="url", url=site.url + "/old")
        assert source.status == "fetching"
        services.source_fetch(source_id=source.id)
        source.refresh_from_db()
        assert (source.status, source.title) == ("ready", "Delivery")
        assert "within 24 hours" in source.text and "var x" not in source.text and "Home | Shop" not in source.text
        assert site.requests[0][1] == site.url.removeprefix("http://")  # the Host header names the host

        site.pages["/delivery"] = (200, {"Content-Type": "text/html"}, b"<p>We now deliver in 2 hours.</p>")
        services.source_refetch(source=source)
        services.source_fetch(source_id=source.id)

    assert [c.text for c in KnowledgeChunk.objects.filter(source=source)] == ["We now deliver in 2 hours."]


@pytest.mark.parametrize("pages, reason", [
    ({"/": (500, {"Content-Type": "text/html"}, b"oops")}, "HTTP 500"),
    ({"/": (200, {"Content-Type": "image/png"}, b"\x89PNG")}, "not text or HTML"),
    ({"/": (200, {"Content-Type": "text/plain"}, b"x" * 2_000)}, "larger than"),
    ({"/": (302, {"Location": "/"}, b"")}, "redirects more than"),
])
def test_unusable_pages_fail_with_the_reason(agent, settings, pages, reason):
    settings.KNOWLEDGE_URL_ALLOW_PRIVATE = True
    settings.KNOWLEDGE_URL_MAX_BYTES = 1_000
    with WebSite(pages) as site:
        source = services.source_create(agent=agent, kind="url", url=site.url + "/")
        services.source_fetch(source_id=source.id)

    source.refresh_from_db()
    assert source.status == "failed" and reason in source.error


# --- The agent uses it -------------------------------------------------------------------------


@pytest.fixture
def openai(settings, agent):
    with OpenAIServer() as server:
        settings.OPENAI_BASE_URL, settings.OPENAI_API_KEY = server.url + "/v1", "sk-test"
        agent.model_provider, agent.model_name = "openai", "gpt-test"
        agent.save()
        yield server


@pytest.mark.django_db(transaction=True)
def test_knowledge_auto_puts_the_best_passages_in_the_prompt_and_on_the_run(connection, agent, openai):
    from tests.test_agent_turns import receive

    agent.knowledge_auto = True
    agent.save()
    faq(agent, "Do you offer refunds?", "Refunds are paid within 14 days.")
    faq(agent, "Where are you?", "Calle Mayor 1, Madrid.")
    openai.reply_text("Refunds are paid within 14 days.")

    run_turn(str(receive(connection, "How do refunds work?")))

    system = openai.requests[0].body["messages"][0]["content"]
    assert "Refunds are paid within 14 days." in system and "Calle Mayor" not in system
    [passage] = AgentRun.objects.get().passages
    assert passage["title"] == "Do you offer refunds?" and passage["kind"] == "faq"


@pytest.mark.django_db(transaction=True)
def test_the_search_tool_returns_passages_with_their_source(connection, agent, openai):
    from apps.agents.models import ToolCall
    from tests.test_agent_turns import receive

    agent.tools = ["knowledge.search"]
    agent.save()
    faq(agent, "Do you offer refunds?", "Refunds are paid within 14 days.")
    openai.reply_tool_call("knowledge.search", {"query": "refund policy"})
    openai.reply_text("Within 14 days.")

    run_turn(str(receive(connection, "refund?")))

    call = ToolCall.objects.get()
    assert call.result["passages"][0]["title"] == "Do you offer refunds?"
    tool_message = openai.requests[1].body["messages"][-1]
    assert "Refunds are paid within 14 days." in json.loads(tool_message["content"])["passages"][0]["text"]
    assert AgentRun.objects.get().passages[0]["title"] == "Do you offer refunds?"


def _pdf(text: str) -> bytes:
    """A one-page PDF with `text` in Helvetica: the smallest file pypdf reads text from."""
    stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out, offsets = b"%PDF-1.4\n", []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return out


# --- The dashboard -----------------------------------------------------------------------------


def test_an_admin_adds_and_removes_knowledge_on_the_agents_page(client, org, agent):
    from apps.orgs.models import Role
    from tests.factories import make_user
    from tests.test_dashboard_support import org_url, signed_in

    client = signed_in(client, make_user(org, role=Role.ADMIN))
    add = org_url("knowledge-add", org, agent_id=agent.pk)

    client.post(add, {"kind": "faq", "question": "Do you deliver on Sundays?", "answer": "No, Monday to Saturday."})
    refused = client.post(add, {"kind": "url", "url": "not a web address"}, follow=True)
    page = client.get(org_url("agent", org, agent_id=agent.pk)).content.decode()

    assert "Do you deliver on Sundays?" in page and "Monday to Saturday" in page
    assert "Web address: Give a web address starting with http" in refused.content.decode()
    source = KnowledgeSource.objects.get()
    client.post(org_url("knowledge-delete", org, agent_id=agent.pk, source_id=source.pk))
    assert not KnowledgeSource.objects.exists()


def test_operators_see_knowledge_but_cannot_change_it_and_outsiders_get_404(client, org, agent, other_org):
    from apps.orgs.models import Role
    from tests.factories import make_user
    from tests.test_dashboard_support import org_url, signed_in

    source = faq(agent, "Hours?", "9 to 5")
    operator = signed_in(client, make_user(org, role=Role.OPERATOR))
    assert "Hours?" in operator.get(org_url("agent", org, agent_id=agent.pk)).content.decode()
    assert operator.post(org_url("knowledge-delete", org, agent_id=agent.pk, source_id=source.pk)).status_code == 403

    outsider = make_user(other_org, role=Role.OWNER)
    client.force_login(outsider)
    theirs = org_url("knowledge-delete", other_org, agent_id=agent.pk, source_id=source.pk)
    assert client.post(theirs).status_code == 404
    assert KnowledgeSource.objects.count() == 1
