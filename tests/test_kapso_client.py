import pytest

from apps.kapso import client
from apps.kapso.errors import KapsoError, error_from_response
from apps.kapso.signatures import sign, signature_is_valid
from tests.fakes.kapso_server import fixture


def test_a_meta_error_object_parses_with_its_code():
    error = error_from_response(422, fixture("api__send_error_131047"))

    assert error.code == "131047" and not error.transient
    assert "24-hour window" in error.message


def test_a_plain_string_error_parses():
    error = error_from_response(409, fixture("api__send_error_409_in_flight"))

    assert error.transient and "in-flight" in error.message


def test_a_rate_limit_carries_its_retry_after():
    error = error_from_response(429, fixture("api__rate_limited_429"), retry_after="60")

    assert error.transient and error.retry_after == 60.0 and error.message == "Rate limit exceeded"


def test_meta_throttling_is_transient_even_as_http_400():
    error = error_from_response(400, fixture("api__send_error_130429"))

    assert error.transient and error.code == "130429"
    assert "throughput" in error.message


@pytest.mark.parametrize(("status", "transient"), [(500, True), (502, True), (400, False), (404, False), (401, False)])
def test_http_statuses_are_classified(status, transient):
    assert error_from_response(status, {"error": "x"}).transient is transient


def test_a_non_json_error_body_still_gives_a_message():
    assert error_from_response(502, "<html>Bad gateway</html>").message == "<html>Bad gateway</html>"


def test_the_client_sends_the_api_key_and_returns_the_wamid(kapso):
    wamid = client.send_text(phone_number_id="123", to="+15551234567", body="hi")

    assert wamid == "wamid.fake.000001"
    [request] = kapso.requests
    assert request["headers"]["X-API-Key"] == "test-kapso-key"


def test_platform_responses_are_unwrapped(kapso):
    number = client.get_phone_number("123")

    assert number["phone_number_id"] == "123" and number["display_phone_number"] == "+1 555-000-1111"


def test_a_wrong_api_key_is_a_permanent_error(kapso, settings):
    settings.KAPSO_API_KEY = "wrong"

    with pytest.raises(KapsoError) as caught:
        client.get_phone_number("123")

    assert caught.value.status == 401 and not caught.value.transient


def test_an_unreachable_kapso_is_a_transient_error(settings):
    settings.KAPSO_API_BASE_URL = "http://127.0.0.1:9"

    with pytest.raises(KapsoError) as caught:
        client.send_text(phone_number_id="1", to="1", body="x")

    assert caught.value.transient and caught.value.status == 0


def test_a_missing_api_key_fails_loudly(settings):
    settings.KAPSO_API_KEY = ""

    with pytest.raises(KapsoError, match="KAPSO_API_KEY"):
        client.get_phone_number("1")


def test_signatures_are_checked_in_constant_time_and_fail_closed():
    body = b'{"a":1}'
    assert signature_is_valid("s", body, sign("s", body))
    assert signature_is_valid("s", body, "sha256=" + sign("s", body).upper())
    assert not signature_is_valid("s", body + b" ", sign("s", body))
    assert not signature_is_valid("", body, sign("", body))
    assert not signature_is_valid("s", body, None)
