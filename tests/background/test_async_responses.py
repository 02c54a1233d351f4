"""Asynchronous endpoints (the node's responseURL): pending at once, the answer PATCHed to the node later."""

from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Iterator

import pytest

import adapters
import app.config
from app.config import schemas_dir
from app.devkit.fake_http import FakeProvider, Reply
from app.devkit.testing import node_request, wait_for

RESUME = "/v2/resume/2d38ecdb-975c-4f99-801c-b916a429947c"
SLOW_ADAPTER = '''
from adapters.coingecko.transports import SimplePriceTransport
from app.core.adapter import Adapter, Endpoint
from app.core.setting_specs import Spec

adapter = Adapter(name="slowquote", default_endpoint="quote",
                  endpoints=[Endpoint("quote", SimplePriceTransport("price"), asynchronous=True),
                             Endpoint("fast", SimplePriceTransport("price"))],
                  settings=[Spec("API_KEY", None, "key", sensitive=True),
                            Spec("API_ENDPOINT", None, "url", kind="url")])
'''


@pytest.fixture
def slow_adapter(tmp_path, monkeypatch) -> Iterator[str]:
    """An adapter with an endpoint marked asynchronous (no shipped provider is slow enough to need one), installed
    beside the shipped adapters for this test only."""
    package = tmp_path / "extra" / "slowquote"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(SLOW_ADAPTER)
    shutil.copy(schemas_dir().parent / "adapters" / "coingecko" / "overrides.json", package)
    schemas = tmp_path / "schemas"
    shutil.copytree(schemas_dir(), schemas)
    (schemas / "slowquote").mkdir()
    for endpoint in ("quote", "fast"):
        shutil.copy(schemas / "coingecko" / "crypto.json", schemas / "slowquote" / f"{endpoint}.json")
    monkeypatch.setattr(adapters, "__path__", [*adapters.__path__, str(tmp_path / "extra")])
    monkeypatch.setattr(app.config, "schemas_dir", lambda: schemas)
    yield "slowquote"
    sys.modules.pop("adapters.slowquote", None)


@pytest.fixture
def node() -> Iterator[FakeProvider]:
    """The node's resume endpoint, on loopback."""
    with FakeProvider() as fake:
        fake.on(RESUME, Reply(200, {}))
        yield fake


def resumes(node: FakeProvider) -> list:
    return [call for call in node.calls if call.path == RESUME]


@pytest.fixture
def client(make_app, slow_adapter):
    return make_app(ADAPTERS=slow_adapter, ASYNC_RESPONSE_BACKOFF_MS="20").test_client()


def test_a_miss_is_answered_pending_and_the_value_patched_to_the_node(client, provider, node):
    provider.delay_s = 0.5
    started = time.monotonic()
    response = node_request(client, id="7", responseURL=node.url + RESUME)
    assert time.monotonic() - started < 0.4  # not held for the provider's 0.5 s
    assert response.status_code == 200 and response.headers["X-Chainlink-Pending"] == "true"
    assert response.get_json() == {"jobRunID": "7", "pending": True, "statusCode": 200}
    [resume] = wait_for(lambda: resumes(node), 5, "the answer PATCHed to the responseURL")
    assert resume.method == "PATCH" and resume.headers["content-type"] == "application/json"
    assert list(resume.json()) == ["value"], resume.json()
    value = resume.json()["value"]
    assert value["jobRunID"] == "7" and value["result"] == 3021.5 and value["data"] == {"result": 3021.5}
    assert value["statusCode"] == 200 and value["meta"]["cacheHit"] is False
    # Cached now: the next job is answered at once, synchronously, and nothing more is sent to the node.
    again = node_request(client, id="8", responseURL=node.url + RESUME).get_json()
    assert again["result"] == 3021.5 and again["meta"]["cacheHit"] is True and "pending" not in again
    assert provider.count("/simple/price") == 1 and len(resumes(node)) == 1


def test_without_a_response_url_the_same_endpoint_answers_synchronously(client, node):
    assert node_request(client).get_json()["result"] == 3021.5
    empty = node_request(client, data={"base": "BTC", "quote": "USD"}, responseURL="")  # node without one set
    assert empty.get_json()["result"] == 97000.0 and "X-Chainlink-Pending" not in empty.headers
    assert resumes(node) == []


def test_a_synchronous_endpoint_ignores_the_response_url(client, node):
    answer = node_request(client, endpoint="fast", responseURL=node.url + RESUME).get_json()
    assert answer["result"] == 3021.5 and "pending" not in answer
    assert resumes(node) == []


def test_a_provider_failure_is_patched_as_the_error(client, provider, node):
    response = node_request(client, data={"base": "NOPE", "quote": "USD"}, responseURL=node.url + RESUME)
    assert response.get_json()["pending"] is True
    [resume] = wait_for(lambda: resumes(node), 5, "the error PATCHed")
    assert list(resume.json()) == ["error"]
    assert resume.json()["error"].startswith("AdapterDataProviderError: CoinGecko returned no price for coin id 'nope'")


def test_the_patch_is_retried_while_the_node_is_unavailable(client, node):
    answers = iter([Reply(503, {}), Reply(502, {}), Reply(200, {})])
    node.on(RESUME, lambda call: next(answers))
    node_request(client, responseURL=node.url + RESUME)
    wait_for(lambda: len(resumes(node)) == 3, 5, "two failed PATCHes then one taken")
    time.sleep(0.2)
    assert len(resumes(node)) == 3  # taken: no more attempts
    assert {call.json()["value"]["result"] for call in resumes(node)} == {3021.5}


def test_a_patch_the_node_refuses_is_not_retried(client, node):
    node.on(RESUME, Reply(422, {"error": "must provide only one of either 'value' or 'error' key"}))
    node_request(client, responseURL=node.url + RESUME)
    wait_for(lambda: resumes(node), 5, "the PATCH")
    time.sleep(0.3)
    assert len(resumes(node)) == 1


@pytest.mark.parametrize("url", ["ftp://node/v2/resume/1", "not a url", 5, {"url": "http://x"}])
def test_a_bad_response_url_is_a_400_naming_it(client, url):
    response = node_request(client, responseURL=url)
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["name"] == "AdapterInputError" and error["message"].startswith("responseURL: must be an http")
