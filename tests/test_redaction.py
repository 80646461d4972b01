"""Personal-data redaction: what is found, what is left alone, and how a turn card says it."""

import pytest

from apps.agents.models import AgentRun
from apps.agents.redaction import pattern_problem, redact, region_of
from apps.dashboard.templatetags.dashboard import redaction_words


@pytest.mark.parametrize(("text", "expected", "kinds"), [
    ("card 4111 1111 1111 1111 ok", "card [CARD] ok", {"CARD": 1}),
    ("card 4111-1111-1111-1111", "card [CARD]", {"CARD": 1}),
    ("order 4111 1111 1111 1112", "order 4111 1111 1111 1112", {}),  # fails the Luhn check
    ("pay to DE89 3704 0044 0532 0130 00 today", "pay to [IBAN] today", {"IBAN": 1}),
    ("pay to DE00 3704 0044 0532 0130 00", "pay to DE00 3704 0044 0532 0130 00", {}),  # bad checksum
    ("write to ana.b+shop@example.co.uk", "write to [EMAIL]", {"EMAIL": 1}),
    ("call +49 151 12345678", "call [PHONE]", {"PHONE": 1}),
    ("your order 12345 ships today", "your order 12345 ships today", {}),
])
def test_it_replaces_personal_data_with_typed_placeholders(text, expected, kinds):
    redacted, counts = redact(text)

    assert (redacted, dict(counts)) == (expected, kinds)


def test_local_numbers_are_found_in_the_contacts_own_country():
    region = region_of("+4915112345678")

    assert region == "DE"
    assert redact("ruf mich an: 0151 12345678", region=region)[0] == "ruf mich an: [PHONE]"


def test_an_agents_own_patterns_get_their_own_placeholder():
    text, counts = redact("Ticket CUST-0042 is open", patterns=[{"name": "customer id", "pattern": "CUST-[0-9]+"}])

    assert (text, dict(counts)) == ("Ticket [CUSTOMER_ID] is open", {"CUSTOMER_ID": 1})


@pytest.mark.parametrize(("pattern", "words"), [
    ({"name": "x", "pattern": "("}, "not a valid regular expression"),
    ({"name": "x", "pattern": "a*"}, "matches empty text"),
    ({"name": "", "pattern": "a"}, "needs a name"),
    ("CUST-1", '{"name": ..., "pattern": ...}'),
])
def test_a_bad_pattern_is_explained(pattern, words):
    assert words in pattern_problem(pattern)


def test_the_turn_card_says_where_data_was_hidden():
    run = AgentRun(redactions={"input": {"CARD": 1, "EMAIL": 2}, "output": {"PHONE": 1}})

    assert redaction_words(run) == ["Hidden from the model: 1 card number, 2 email addresses.",
                                    "Hidden in what the agent sent: 1 phone number."]
