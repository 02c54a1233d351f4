"""The Open Exchange Rates adapter against a fake Open Exchange Rates speaking its documented /latest.json."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import pytest

from adapters.openexchangerates.transports import LatestTransport
from app.sdk import Call, ProviderResponse, Reply, SettingsError, node_request, wait_for

KEY = "0123456789abcdef0123456789abcdef"  # app ids are 32 hex characters
STAMP_MS = 1711360800 * 1000
FIXTURES = Path(__file__).parent / "fixtures"


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def oxr(paid: bool = True):
    """A fake /latest.json: the app id from the Authorization header, rates of the asked base narrowed to
    ``symbols`` (unknown ones left out, as the provider does); a non-USD base only on a paid plan."""

    def answer(call: Call) -> Reply:
        if call.headers.get("authorization") != f"Token {KEY}" or "app_id" in call.query:
            return Reply(401, fixture("error_invalid_app_id"))
        base = call.query.get("base", "USD")
        if base != "USD" and not paid:
            return Reply(403, fixture("error_not_allowed"))
        if base not in ("USD", "EUR"):
            return Reply(400, fixture("error_invalid_base"))
        body = fixture(f"latest_{base.lower()}")
        symbols = call.query["symbols"].split(",")
        body["rates"] = {code: rate for code, rate in body["rates"].items() if code in symbols}
        return Reply(body=body)

    return answer


@pytest.fixture
def client(pyea_app, fake_provider):
    fake_provider.on("/latest.json", oxr())
    return pyea_app(API_KEY=KEY).test_client()


def error_of(response) -> str:
    return response.get_json()["error"]["message"]


def test_rate_of_base_in_quote(client, fake_provider):
    body = node_request(client, {"base": "USD", "quote": "EUR"}).get_json()
    assert body["statusCode"] == 200 and body["result"] == 0.924968
    assert body["timestamps"]["providerIndicatedTimeUnixMs"] == STAMP_MS
    [call] = fake_provider.calls
    assert call.path == "/latest.json" and call.query == {"base": "USD", "symbols": "EUR"}


@pytest.mark.parametrize("data, endpoint, expected", [
    ({"from": "usd", "to": "gbp"}, None, 0.791614),
    ({"coin": "EUR", "market": "jpy"}, "forex", 163.70018),
    ({"base": "eur", "quote": "usd"}, "price", 1.081118),
])
def test_aliases_and_lower_case_name_the_same_feed(client, data, endpoint, expected):
    assert node_request(client, data, endpoint=endpoint).get_json()["result"] == expected


def test_query_string_request(client):
    assert client.get("/?from=USD&to=CHF").get_json()["result"] == 0.897925


def test_one_call_per_base_with_its_quotes_sorted():
    feeds = [{"base": "USD", "quote": "JPY"}, {"base": "EUR", "quote": "GBP"}, {"base": "USD", "quote": "EUR"},
             {"base": "usd", "quote": "EUR"}, {"base": "EUR", "quote": "USD"}]
    requests = LatestTransport().prepare_requests(feeds, {"API_ENDPOINT": "https://oxr.test/api/", "API_KEY": KEY})
    assert [(r.url, dict(r.params)) for r in requests] == [
        ("https://oxr.test/api/latest.json", {"base": "EUR", "symbols": "GBP,USD"}),
        ("https://oxr.test/api/latest.json", {"base": "USD", "symbols": "EUR,JPY"})]
    assert [len(r.params_list) for r in requests] == [2, 3]  # every feed rides on its base's call
    assert all(r.headers["Authorization"] == f"Token {KEY}" for r in requests)


def test_a_quote_missing_from_the_answer_fails_only_that_feed():
    feeds = [{"base": "USD", "quote": "EUR"}, {"base": "USD", "quote": "XYZ"}]
    answer = ProviderResponse(200, json.dumps(fixture("latest_usd")).encode(), {}, 0, 0)
    (ok, value), (bad, error) = LatestTransport().parse_response(feeds, answer, {})
    assert ok["quote"] == "EUR" and value.result == 0.924968 and value.provider_indicated_ms == STAMP_MS
    assert bad["quote"] == "XYZ" and "quote 'XYZ'" in error.message and error.status_code == 502


def test_background_refresh_costs_one_call_per_base(pyea_app, fake_provider):
    """Entries live 1 s and the cycle runs every 0.2 s, so every feed is due again within about 0.6 s."""
    fake_provider.on("/latest.json", oxr())
    client = pyea_app(API_KEY=KEY, CACHE_MAX_AGE="1000", CACHE_MIN_AGE="0", WARMUP_INTERVAL="200").test_client()
    feeds = [("USD", "EUR"), ("USD", "GBP"), ("USD", "JPY"), ("EUR", "GBP"), ("EUR", "USD")]
    for base, quote in feeds:
        assert node_request(client, {"base": base, "quote": quote}).status_code == 200
    fake_provider.reset()
    wait_for(lambda: fake_provider.count() >= 2, 5, "a background refresh cycle")
    time.sleep(0.1)  # any further call of that cycle has arrived; the next cycle is 0.6 s away
    calls = fake_provider.calls
    cycle = sorted((c.query["base"], c.query["symbols"]) for c in calls if calls[-1].at - c.at < 0.1)
    assert cycle == [("EUR", "GBP,USD"), ("USD", "EUR,GBP,JPY")]
    bodies = [node_request(client, {"base": b, "quote": q}).get_json() for b, q in feeds]
    assert all(body["meta"]["cacheHit"] for body in bodies)
    assert [body["result"] for body in bodies] == [0.924968, 0.791614, 151.4165, 0.855828, 1.081118]


def test_app_id_travels_in_the_header_and_is_never_shown(pyea_app, fake_provider):
    client = pyea_app(API_KEY=KEY, LOG_LEVEL="debug").test_client()
    lines: list[str] = []
    formatter = logging.getLogger("pyea").handlers[0].formatter
    recorder = logging.Handler()
    recorder.emit = lambda record: lines.append(formatter.format(record))  # type: ignore[method-assign]
    logging.getLogger("pyea").addHandler(recorder)
    try:
        fake_provider.on("/latest.json", lambda call: Reply(401, fixture("error_invalid_app_id"))
                         if call.query["symbols"] == "GBP" else oxr()(call))
        texts = [node_request(client, {"base": "USD", "quote": "EUR"}).get_data(as_text=True),
                 node_request(client, {"base": "USD", "quote": "GBP"}).get_data(as_text=True),
                 client.get("/status").get_data(as_text=True)]
    finally:
        logging.getLogger("pyea").removeHandler(recorder)
    assert all(c.headers["authorization"] == f"Token {KEY}" for c in fake_provider.calls)
    assert all(KEY not in c.path and KEY not in json.dumps(c.query) for c in fake_provider.calls)
    assert lines and not [text for text in texts + lines if KEY in text]


def test_unknown_quote_is_502_naming_it(client):
    response = node_request(client, {"base": "USD", "quote": "XYZ"})
    assert response.status_code == 502
    assert error_of(response) == "Open Exchange Rates returned no rate for quote 'XYZ' in base 'USD'; check quote"


def test_non_usd_base_on_the_free_plan_says_it_needs_a_paid_plan(pyea_app, fake_provider):
    fake_provider.on("/latest.json", oxr(paid=False))
    client = pyea_app(API_KEY=KEY).test_client()
    response = node_request(client, {"base": "EUR", "quote": "USD"})
    assert response.status_code == 502 and response.get_json()["providerStatusCode"] == 403
    assert error_of(response) == ("Open Exchange Rates refused base 'EUR' (HTTP 403 not_allowed): a base other than "
                                  "USD needs a paid plan (Developer, Enterprise or Unlimited); upgrade the app id's "
                                  "plan, or ask for base USD")
    assert fake_provider.count() == 1  # a refusal is not retried
    assert node_request(client, {"base": "USD", "quote": "EUR"}).status_code == 200


def test_wrong_app_id_says_which_setting_to_check(pyea_app, fake_provider):
    fake_provider.on("/latest.json", oxr())
    response = node_request(pyea_app(API_KEY="not-the-app-id").test_client(), {"base": "USD", "quote": "EUR"})
    assert response.status_code == 502 and response.get_json()["providerStatusCode"] == 401
    assert error_of(response) == ("Open Exchange Rates rejected the app id (HTTP 401 invalid_app_id): check "
                                  "OPENEXCHANGERATES_API_KEY (or API_KEY)")
    assert fake_provider.count() == 1


def test_unknown_base_is_502_naming_it(client):
    response = node_request(client, {"base": "ABC", "quote": "USD"})
    assert response.status_code == 502 and response.get_json()["providerStatusCode"] == 400
    assert error_of(response) == "Open Exchange Rates does not know base 'ABC' (HTTP 400 invalid_base): check base"


def test_other_refusals_keep_the_providers_own_words(pyea_app, fake_provider):
    fake_provider.on("/latest.json", Reply(403, fixture("error_access_restricted")))
    response = node_request(pyea_app(API_KEY=KEY).test_client(), {"base": "USD", "quote": "EUR"})
    assert response.status_code == 502
    message = error_of(response)
    assert message.startswith("Open Exchange Rates refused the call (HTTP 403 access_restricted): the app id's "
                              "plan does not allow it, or its monthly request quota is used up; ")
    assert "Access restricted for repeated over-use" in message


def test_rates_for_another_base_than_asked_are_never_served(pyea_app, fake_provider):
    fake_provider.on("/latest.json", fixture("latest_usd"))  # a proxy that dropped ?base=
    response = node_request(pyea_app(API_KEY=KEY).test_client(), {"base": "EUR", "quote": "GBP"})
    assert response.status_code == 502
    assert error_of(response) == "Open Exchange Rates answered rates for base 'USD', asked for 'EUR'"


@pytest.mark.parametrize("data, message", [
    ({"base": "USD"}, "data.quote: required parameter is missing (also accepted as to, market)"),
    ({"quote": "EUR"}, "data.base: required parameter is missing (also accepted as from, coin)"),
])
def test_missing_input_is_400_naming_the_field(client, fake_provider, data, message):
    response = node_request(client, data)
    assert response.status_code == 400 and error_of(response) == message
    assert fake_provider.count() == 0


def test_a_list_of_quotes_in_one_input_is_400(client, fake_provider):
    response = node_request(client, {"base": "USD", "quote": "EUR,GBP"})
    assert response.status_code == 400 and error_of(response).startswith("data.quote: 'EUR,GBP' does not match")
    assert fake_provider.count() == 0


def test_no_app_id_is_refused_at_startup_naming_the_variable(pyea_app):
    with pytest.raises(SettingsError) as caught:
        pyea_app()
    assert "OPENEXCHANGERATES_API_KEY (or API_KEY)=(unset): must be set" in str(caught.value)


def test_an_inverse_pair_is_answered_from_the_pair_the_provider_quotes(client, fake_provider):
    """includes.json: COP/USD is fetched as USD/COP and answered as its inverse; both share one value."""
    body = node_request(client, {"base": "COP", "quote": "USD"}).get_json()
    assert body["statusCode"] == 200 and body["result"] == 1 / 3901.24 == body["data"]["result"]
    assert [c.query for c in fake_provider.calls] == [{"base": "USD", "symbols": "COP"}]
    direct = node_request(client, {"from": "usd", "to": "cop"}).get_json()
    assert direct["result"] == 3901.24 and direct["meta"]["cacheHit"] is True
    assert len(fake_provider.calls) == 1, "the inverse pair and the pair itself are one feed"


def test_a_request_can_name_its_own_inverse_pair(client, fake_provider):
    includes = [{"from": "JPY", "to": "USD", "includes": [{"from": "USD", "to": "JPY", "inverse": True}]}]
    body = node_request(client, {"base": "jpy", "quote": "usd", "includes": includes}).get_json()
    assert body["statusCode"] == 200 and body["result"] == 1 / 151.4165
    assert fake_provider.calls[-1].query == {"base": "USD", "symbols": "JPY"}
    node_request(client, {"base": "JPY", "quote": "USD"})
    assert fake_provider.calls[-1].query == {"base": "JPY", "symbols": "USD"}, "without it, asked as it is"


@pytest.mark.parametrize(("includes", "says"), [
    ("JPY", "data.includes: must be an array"),
    ([{"from": "JPY"}], "data.includes[0]: must be an object with from and to"),
    ([{"from": "JPY", "to": "USD", "includes": []}], "data.includes[0]: includes: must be a non-empty array"),
    ([{"from": "JPY", "to": "USD", "includes": [{"from": "USD", "to": "JPY", "inverse": "yes"}]}],
     "includes[0].inverse: must be true or false"),
])
def test_a_malformed_includes_is_a_400_naming_it(client, fake_provider, includes, says):
    response = node_request(client, {"base": "JPY", "quote": "USD", "includes": includes})
    assert response.status_code == 400 and says in error_of(response), error_of(response)
    assert fake_provider.calls == []


def test_the_twins_integration_requests(pyea_app, fake_provider):
    """The TypeScript adapter's three tests, against the answers they recorded: a rate, an inverse pair (its
    includes.json), and an unknown quote (502)."""
    eth = {"timestamp": 1636113600, "base": "ETH", "rates": {"USD": 4483.820268, "EUR": 3887.617117}}
    usd = {"timestamp": 1636113600, "base": "USD", "rates": {"IDR": 0.234, "ETH": 234}}
    fake_provider.on("/latest.json", lambda call: Reply(body={"ETH": eth, "USD": usd}[call.query["base"]]))
    client = pyea_app(API_KEY=KEY).test_client()
    body = node_request(client, {"base": "ETH", "quote": "USD"}).get_json()
    assert body["statusCode"] == 200 and body["result"] == 4483.820268 == body["data"]["result"]
    body = node_request(client, {"base": "IDR", "quote": "USD"}).get_json()
    assert body["statusCode"] == 200 and body["result"] == 4.273504273504273 == body["data"]["result"]
    assert node_request(client, {"base": "ETH", "quote": "INVALID"}).status_code == 502
