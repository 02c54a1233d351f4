"""Cold misses of one endpoint arriving together cost one batched provider call: across threads, across processes
sharing a CACHE_DIR, and while the provider's quota makes them wait. One bad feed fails only itself."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

from app.devkit.testing import node_request

PRICE = "/simple/price"


def coins(provider, count: int, start: int = 0) -> list[str]:
    """``count`` coins the fake provider knows, priced by their number."""
    names = [f"coin-{i}" for i in range(start, start + count)]
    for i, name in enumerate(names, start):
        provider.prices[(name, "usd")] = float(i)
    return names


def burst(clients, names: list[str], **data):
    """Every coin asked for at once, from as many threads, spread over ``clients``; (status, body) in order."""
    barrier = threading.Barrier(len(names))

    def ask(i: int):
        barrier.wait()
        response = node_request(clients[i % len(clients)], {"coinid": names[i], "quote": "USD", **data})
        return response.status_code, response.get_json()

    with ThreadPoolExecutor(len(names)) as pool:
        return list(pool.map(ask, range(len(names))))


def ids_asked(provider) -> list[set[str]]:
    return [set(call.query["ids"].split(",")) for call in provider.calls if call.path == PRICE]


def test_a_burst_of_new_feeds_costs_one_call_and_each_gets_its_own_value(make_app, provider):
    names = coins(provider, 60)
    provider.delay_s = 0.05
    answers = burst([make_app().test_client()], names)
    assert [status for status, _ in answers] == [200] * 60
    assert [body["result"] for _, body in answers] == [float(i) for i in range(60)]
    asked = ids_asked(provider)
    assert len(asked) <= 2, f"{len(asked)} calls for one burst"  # one, unless the machine stalls past the window
    assert set().union(*asked) == set(names)


def test_processes_sharing_a_cache_dir_batch_together(make_app, provider, tmp_path):
    """Two apps on one CACHE_DIR stand for two gunicorn workers (the real ones: tests/hosting/test_worker.py)."""
    shared = str(tmp_path / "shared")
    apps = [make_app(CACHE_DIR=shared), make_app(CACHE_DIR=shared)]
    names = coins(provider, 40)
    provider.delay_s = 0.05
    answers = burst([app.test_client() for app in apps], names)
    assert [body["result"] for _, body in answers] == [float(i) for i in range(40)]
    assert len(ids_asked(provider)) <= 2
    # The second app's feeds were fetched by whichever owned the batch, and are hits in both now.
    for app in apps:
        assert node_request(app.test_client(), {"coinid": names[1], "quote": "USD"}).get_json()["meta"]["cacheHit"]


def test_one_feed_the_provider_does_not_know_fails_alone(make_app, provider):
    names = [*coins(provider, 9), "no-such-coin"]
    answers = burst([make_app().test_client()], names)
    assert [status for status, _ in answers] == [200] * 9 + [502]
    assert "no price for coin id 'no-such-coin'" in answers[-1][1]["error"]["message"]
    assert len(ids_asked(provider)) == 1


def test_a_feed_joining_within_the_window_keeps_the_batch_open_for_it(make_app, provider):
    client = make_app(FOREGROUND_BATCH_WINDOW_MS="300").test_client()
    first, second, third = coins(provider, 3)
    with ThreadPoolExecutor(3) as pool:
        later = pool.submit(lambda: (time.sleep(0.15), node_request(client, {"coinid": third, "quote": "USD"}))[1])
        together = burst([client], [first, second])  # a burst: the batch waits for more
        assert [status for status, _ in together] == [200, 200]
        assert later.result().status_code == 200
    assert ids_asked(provider) == [{first, second, third}]


def test_a_full_batch_closes_at_once_and_the_next_feed_opens_another(make_app, provider):
    app = make_app(FOREGROUND_BATCH_WINDOW_MS="1000")
    names = coins(provider, 101)  # CoinGecko's simple/price carries 100 ids per call
    started = time.monotonic()
    answers = burst([app.test_client()], names)
    assert all(status == 200 for status, _ in answers)
    assert sorted(len(ids) for ids in ids_asked(provider)) == [1, 100]
    assert time.monotonic() - started < 2.5  # the full batch did not wait out its window; the last one did


def test_the_same_feed_asked_twice_is_fetched_once_inside_a_batch(make_app, provider, tmp_path):
    shared = str(tmp_path / "shared")
    clients = [make_app(CACHE_DIR=shared).test_client(), make_app(CACHE_DIR=shared).test_client()]
    names = coins(provider, 5) * 8  # every feed asked 8 times, from both apps
    provider.delay_s = 0.1
    answers = burst(clients, names)
    assert all(status == 200 for status, _ in answers)
    asked = ids_asked(provider)
    assert sum(len(ids) for ids in asked) == 5, asked


def test_without_a_window_cold_feeds_are_fetched_as_they_come(make_app, provider):
    client = make_app(FOREGROUND_BATCH_WINDOW_MS="0").test_client()
    for name in coins(provider, 3):
        assert node_request(client, {"coinid": name, "quote": "USD"}).status_code == 200
    assert len(ids_asked(provider)) == 3


def limited(make_app, **env):
    return make_app(RATE_LIMIT_ENABLED="true", **env)


def test_a_cold_feed_waits_for_the_quota_instead_of_a_429(make_app, provider):
    client = limited(make_app, RATE_LIMIT_CAPACITY_SECOND="1").test_client()
    first, second = coins(provider, 2)
    assert node_request(client, {"coinid": first, "quote": "USD"}).status_code == 200
    started = time.monotonic()
    response = node_request(client, {"coinid": second, "quote": "USD"})
    assert response.status_code == 200, response.get_json()
    assert 0.5 < time.monotonic() - started < 2.0  # the next slot, about a second after the first call


def test_feeds_arriving_while_a_batch_waits_for_quota_join_its_call(make_app, provider):
    client = limited(make_app, RATE_LIMIT_CAPACITY_SECOND="1").test_client()
    names = coins(provider, 11)
    assert node_request(client, {"coinid": names[0], "quote": "USD"}).status_code == 200

    def ask(i: int):
        time.sleep(i * 0.05)  # spread over half a second: longer than the window, shorter than the wait
        return node_request(client, {"coinid": names[i], "quote": "USD"}).status_code

    with ThreadPoolExecutor(10) as pool:
        assert list(pool.map(ask, range(1, 11))) == [200] * 10
    assert [len(ids) for ids in ids_asked(provider)] == [1, 10]


def test_no_slot_within_the_patience_is_a_429_saying_when_to_retry_at_once(make_app, provider):
    client = limited(make_app, RATE_LIMIT_CAPACITY="1").test_client()
    names = coins(provider, 31)
    assert node_request(client, {"coinid": names[0], "quote": "USD"}).status_code == 200
    started = time.monotonic()
    answers = burst([client], names[1:])
    assert time.monotonic() - started < 2.0  # a minute's wait is beyond any patience: answered now
    assert [status for status, _ in answers] == [429] * 30
    messages = {body["error"]["message"] for _, body in answers}
    assert all("1 call per minute" in m and "retry in" in m for m in messages), messages
    assert len(ids_asked(provider)) == 1


def test_patience_is_a_setting_bounded_by_the_provider_timeout(make_app, provider):
    client = limited(make_app, RATE_LIMIT_CAPACITY_SECOND="1", RATE_LIMIT_WAIT_MS="100").test_client()
    first, second = coins(provider, 2)
    node_request(client, {"coinid": first, "quote": "USD"})
    response = node_request(client, {"coinid": second, "quote": "USD"})
    assert response.status_code == 429 and "retry in" in response.get_json()["error"]["message"]
