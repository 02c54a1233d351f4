"""The Tiingo adapter against a fake Tiingo that answers from recorded-style fixtures: stock and forex prices,
batching, the token, and what a node sees when Tiingo cannot answer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.sdk import Call, Reply, SettingsError, node_request, wait_for

KEY = "tiingo-test-token-5f2c9a"
FIXTURES = Path(__file__).parent / "fixtures"
IEX, FX = "/iex", "/tiingo/fx/top"


def fixture(name: str) -> object:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def tiingo(quotes: list[dict]):
    """Answers like Tiingo: 401 without the right token, else only the quotes for the tickers asked for (any
    case), leaving the unknown ones out."""

    def answer(call: Call) -> Reply:
        if call.headers.get("authorization") != f"Token {KEY}":
            return Reply(401, fixture("invalid_token.json"))
        asked = set(call.query.get("tickers", "").lower().split(","))
        return Reply(200, [q for q in quotes if q["ticker"].lower() in asked])

    return answer


@pytest.fixture
def client(pyea_app, fake_provider):
    fake_provider.on(IEX, tiingo(fixture("iex.json")))
    fake_provider.on(FX, tiingo(fixture("fx_top.json")))
    return pyea_app(API_KEY=KEY).test_client()


def tickers(call: Call) -> set[str]:
    return set(call.query["tickers"].split(","))


@pytest.mark.parametrize("endpoint", ["stock", "iex", "IEX"])
@pytest.mark.parametrize("data", [{"base": "AAPL"}, {"ticker": "aapl"}, {"from": "Aapl"}])
def test_stock_price_is_tiingos_reference_price(client, fake_provider, endpoint, data):
    body = node_request(client, data, endpoint=endpoint).get_json()
    assert body["statusCode"] == 200 and body["result"] == 213.49
    assert body["timestamps"]["providerIndicatedTimeUnixMs"] == 1741981337331  # 2025-03-14T15:42:17.331-04:00
    assert [(c.path, c.query) for c in fake_provider.calls] == [(IEX, {"tickers": "aapl"})]


def test_share_class_tickers_keep_their_dash(client):
    assert node_request(client, {"base": "brk-b"}, endpoint="iex").get_json()["result"] == 519.33


def test_stock_falls_back_to_the_iex_last_trade(pyea_app, fake_provider):
    quotes = fixture("iex.json")
    quotes[1]["tngoLast"] = None
    fake_provider.on(IEX, tiingo(quotes))
    body = node_request(pyea_app(API_KEY=KEY).test_client(), {"base": "MSFT"}, endpoint="iex").get_json()
    assert body["result"] == 387.92


@pytest.mark.parametrize("endpoint", ["forex", "fx"])
@pytest.mark.parametrize("data", [{"base": "EUR", "quote": "USD"}, {"from": "eur", "to": "usd"},
                                  {"base": "eur", "market": "USD"}])
def test_forex_rate_is_the_mid_price(client, fake_provider, endpoint, data):
    body = node_request(client, data, endpoint=endpoint).get_json()
    assert body["statusCode"] == 200 and body["result"] == 1.0882
    assert body["timestamps"]["providerIndicatedTimeUnixMs"] == 1741981337288
    assert [(c.path, c.query) for c in fake_provider.calls] == [(FX, {"tickers": "eurusd"})]


def test_background_refresh_asks_for_many_feeds_in_one_call(pyea_app, fake_provider):
    fake_provider.on(IEX, tiingo(fixture("iex.json")))
    fake_provider.on(FX, tiingo(fixture("fx_top.json")))
    # Entries live 2 s and are refreshed once older than 1.2 s: the first refresh cycle comes within ~1.5 s.
    client = pyea_app(API_KEY=KEY, CACHE_MAX_AGE="2000", CACHE_MIN_AGE="0", WARMUP_INTERVAL="300").test_client()
    for base in ("AAPL", "MSFT", "SPY"):
        assert node_request(client, {"base": base}, endpoint="iex").status_code == 200
    for base, quote in (("EUR", "USD"), ("GBP", "USD")):
        assert node_request(client, {"base": base, "quote": quote}, endpoint="forex").status_code == 200
    fake_provider.reset()
    wait_for(lambda: fake_provider.count(IEX) and fake_provider.count(FX), 5, "a background refresh of both")
    assert tickers(next(c for c in fake_provider.calls if c.path == IEX)) == {"aapl", "msft", "spy"}
    assert tickers(next(c for c in fake_provider.calls if c.path == FX)) == {"eurusd", "gbpusd"}
    # ...and the node is answered from what those calls brought, without a call of its own.
    before = fake_provider.count()
    assert node_request(client, {"base": "MSFT"}, endpoint="iex").get_json()["result"] == 387.92
    assert fake_provider.count() == before


def test_token_travels_in_the_authorization_header_only(pyea_app, fake_provider, capsys):
    fake_provider.on(IEX, tiingo(fixture("iex.json")))
    fake_provider.on(FX, Reply(401, fixture("invalid_token.json")))
    client = pyea_app(API_KEY=KEY, LOG_LEVEL="debug").test_client()
    answers = [node_request(client, {"base": "AAPL"}, endpoint="iex").get_data(as_text=True),
               node_request(client, {"base": "NOPE"}, endpoint="iex").get_data(as_text=True),
               node_request(client, {"base": "EUR", "quote": "USD"}, endpoint="fx").get_data(as_text=True),
               client.get("/status").get_data(as_text=True)]
    assert {c.headers["authorization"] for c in fake_provider.calls} == {f"Token {KEY}"}
    assert all("token" not in c.query and KEY not in c.path + json.dumps(c.query) for c in fake_provider.calls)
    assert all(KEY not in text for text in answers)
    log = capsys.readouterr().err
    assert "/iex" in log and KEY not in log  # the log did record the calls, and never the token


def test_unknown_ticker_is_502_naming_it(client):
    response = node_request(client, {"base": "NOPE"}, endpoint="iex")
    assert response.status_code == 502
    assert "no quote for ticker 'NOPE'" in response.get_json()["error"]["message"]


def test_unknown_pair_is_502_naming_it(client):
    response = node_request(client, {"base": "EUR", "quote": "XYZ"}, endpoint="forex")
    assert response.status_code == 502
    assert "no quote for ticker 'eurxyz'" in response.get_json()["error"]["message"]


def test_pair_with_an_empty_side_of_the_book_is_502_not_a_guess(client):
    response = node_request(client, {"base": "USD", "quote": "TRY"}, endpoint="forex")
    assert response.status_code == 502
    assert "quote for 'usdtry' has no midPrice" in response.get_json()["error"]["message"]


def test_rejected_token_is_502_quoting_tiingo(pyea_app, fake_provider):
    fake_provider.on(IEX, tiingo(fixture("iex.json")))
    wrong = "not-the-right-token-123"
    response = node_request(pyea_app(API_KEY=wrong).test_client(), {"base": "AAPL"}, endpoint="iex")
    body = response.get_json()
    assert response.status_code == 502 and body["providerStatusCode"] == 401
    assert "HTTP 401" in body["error"]["message"] and "Invalid token." in body["error"]["message"]
    assert wrong not in response.get_data(as_text=True)


@pytest.mark.parametrize("status", [200, 429])
def test_used_up_allowance_is_a_clear_error(pyea_app, fake_provider, status):
    """Tiingo says so in ``detail``, with a 429 or, at times, a 200."""
    fake_provider.on(IEX, Reply(status, fixture("over_allocation.json")))
    response = node_request(pyea_app(API_KEY=KEY, RETRY="0").test_client(), {"base": "AAPL"}, endpoint="iex")
    body = response.get_json()
    assert response.status_code == 502 and body["providerStatusCode"] == status
    assert "hourly request allocation" in body["error"]["message"]


@pytest.mark.parametrize("endpoint, data, missing", [
    ("stock", {}, "data.base: required parameter is missing (also accepted as from, symbol, asset, coin, ticker)"),
    ("forex", {"base": "EUR"}, "data.quote: required parameter is missing (also accepted as to, market)"),
])
def test_missing_input_is_400_naming_it(client, fake_provider, endpoint, data, missing):
    response = node_request(client, data, endpoint=endpoint)
    assert response.status_code == 400 and missing in response.get_json()["error"]["message"]
    assert fake_provider.count() == 0


@pytest.mark.parametrize("endpoint, data, field", [
    ("stock", {"base": "AAPL,MSFT"}, "data.base"),  # one feed must never ask for two tickers
    ("forex", {"base": "EUR/USD", "quote": "USD"}, "data.base"),
])
def test_malformed_ticker_is_400(client, fake_provider, endpoint, data, field):
    response = node_request(client, data, endpoint=endpoint)
    assert response.status_code == 400 and response.get_json()["error"]["message"].startswith(field)
    assert fake_provider.count() == 0


def test_no_token_is_refused_at_startup_naming_the_variable(pyea_app):
    with pytest.raises(SettingsError) as caught:
        pyea_app()
    problem = str(caught.value)
    assert "TIINGO_API_KEY (or API_KEY)" in problem and "must be set" in problem
