"""The outbound rate limiter: exact sliding windows, shared by processes, with a reserve kept for foreground calls.

Windows are fixed at 1 s / 60 s / 3600 s, so timing is tested on the 1 s window, the longer ones by counts or with
a controlled clock. Grants are checked at the time the limiter recorded them (observed through ``_now``), which is
what the guarantee is about; the time a caller gets control back is later by scheduling jitter.
"""

from __future__ import annotations

import multiprocessing
import random
import statistics
import threading
import time
from collections.abc import Callable, Iterator

import diskcache
import pytest

import app.fetch.rate_limit as ratelimit
from app.core.provider_limits import RateLimit
from app.fetch.rate_limit import MARGIN_S, RateLimiter, describe, windows


def limit(per_second: float | None = None, per_minute: float = 600.0, per_hour: float | None = None) -> RateLimit:
    return RateLimit(per_second, per_minute, per_hour, "test")


class RecordingLimiter(RateLimiter):
    """Remembers, per thread, the time its last call was checked (and, when granted, recorded) at."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._seen = threading.local()

    def _now(self) -> float:
        self._seen.now = super()._now()
        return self._seen.now

    def last_now(self) -> float:
        return self._seen.now


class ClockLimiter(RateLimiter):
    """Runs on a clock the test sets, for the hour window and clock steps."""

    clock = 1_000_000.0

    def _now(self) -> float:
        return self.clock


def busiest(stamps: list[float], window_s: float) -> int:
    """The most calls in any half-open interval ``[t, t + window_s)``; the maximum is reached with ``t`` at a call."""
    stamps = sorted(stamps)
    most, first = 0, 0
    for last, stamp in enumerate(stamps):
        while not stamps[first] + window_s > stamp:
            first += 1
        most = max(most, last - first + 1)
    return most


@pytest.fixture
def make_limiter(tmp_path) -> Iterator[Callable[..., RateLimiter]]:
    opened: list[RateLimiter] = []

    def make(rate: RateLimit, name: str = "provider", cls: type[RateLimiter] = RateLimiter, **kwargs) -> RateLimiter:
        limiter = cls(str(tmp_path / "ratelimit"), rate, name, **kwargs)
        opened.append(limiter)
        return limiter

    yield make
    for limiter in opened:
        limiter.close()


def test_allows_exactly_n_then_waits_for_the_oldest_to_expire(make_limiter):
    limiter = make_limiter(limit(per_second=5))
    assert [limiter.try_acquire() for _ in range(5)] == [0.0] * 5
    assert limiter.usage() == {"1s": 5, "60s": 5}
    wait = limiter.try_acquire()
    assert 0 < wait <= 1.0 + MARGIN_S
    assert limiter.try_acquire() > 0  # a refusal records nothing, so it does not push the wait back
    time.sleep(wait)
    assert limiter.try_acquire() == 0.0
    assert (limiter.granted, limiter.refused) == (6, 2)
    assert limiter.usage()["60s"] == 6


def test_no_interval_of_the_window_length_ever_holds_more_than_the_limit(make_limiter):
    limiter = make_limiter(limit(per_second=5), cls=RecordingLimiter)
    stamps: list[float] = []
    end = time.time() + 1.6

    def caller(seed: int) -> None:
        pace = random.Random(seed)
        while time.time() < end:
            if limiter.try_acquire() == 0.0:
                stamps.append(limiter.last_now())
            time.sleep(pace.uniform(0, 0.06))

    threads = [threading.Thread(target=caller, args=(seed,)) for seed in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(stamps) > 5  # the window slid: calls were granted after the first five expired
    assert busiest(stamps, 1.0) == 5
    assert busiest(stamps, 1.0 + MARGIN_S * 0.99) == 5  # with the margin to spare for the provider's view


def test_fractional_limits_round_down_but_never_to_zero(make_limiter):
    minute = make_limiter(limit(per_minute=11.5), name="minute")
    assert [minute.try_acquire() for _ in range(11)] == [0.0] * 11
    assert 59 < minute.try_acquire() <= 60 + MARGIN_S

    second = make_limiter(limit(per_second=2.7), name="second")
    assert [second.try_acquire() for _ in range(2)] == [0.0, 0.0]
    assert second.try_acquire() > 0

    tiny = make_limiter(limit(per_second=0.5, per_minute=0.25, per_hour=0.1), name="tiny")
    assert [w.allowed for w in tiny.windows] == [1, 1, 1]
    assert tiny.try_acquire() == 0.0
    assert 3599 < tiny.try_acquire() <= 3600 + MARGIN_S  # the hour window binds


@pytest.mark.parametrize(("allowed", "background"), [(1, 1), (2, 1), (9, 8), (10, 9), (11, 9), (20, 18), (30, 27)])
def test_background_keeps_a_tenth_in_reserve(allowed, background):
    (window,) = windows(limit(per_minute=allowed))
    assert (window.allowed, window.background) == (allowed, background)


def test_background_work_leaves_the_reserve_to_foreground(make_limiter):
    limiter = make_limiter(limit(per_minute=20))
    assert [limiter.try_acquire(background=True) for _ in range(18)] == [0.0] * 18
    assert limiter.try_acquire(background=True) > 0
    assert [limiter.try_acquire() for _ in range(2)] == [0.0, 0.0]
    assert limiter.try_acquire() > 0

    single = make_limiter(limit(per_minute=1), name="single")
    assert single.try_acquire(background=True) == 0.0  # no reserve possible: background may use the only call
    assert single.try_acquire() > 0


def test_reserve_applies_to_every_window(make_limiter):
    limiter = make_limiter(limit(per_second=10, per_minute=600))
    assert [limiter.try_acquire(background=True) for _ in range(9)] == [0.0] * 9
    assert 0 < limiter.try_acquire(background=True) <= 1.0 + MARGIN_S
    assert limiter.try_acquire() == 0.0


def _hammer(directory: str, rate: RateLimit, threads: int, ready, go, end, out) -> None:
    """One worker process: ``threads`` threads calling ``try_acquire`` back to back until ``end``."""
    limiter = RecordingLimiter(directory, rate, "provider")
    ready.put(None)
    go.wait()
    grants: list[tuple[float, float]] = []  # (recorded at, returned at)
    latencies: list[float] = []

    def run() -> None:
        mine, timings = [], []
        while time.time() < end.value:
            started = time.perf_counter()
            wait = limiter.try_acquire()
            timings.append(time.perf_counter() - started)
            if wait == 0.0:
                mine.append((limiter.last_now(), time.time()))
        grants.extend(mine)
        latencies.extend(timings)

    workers = [threading.Thread(target=run) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    out.put((grants, latencies, limiter.refused))
    limiter.close()


def test_processes_and_threads_sharing_a_directory_never_overdraw(tmp_path):
    rate, processes, threads, run_s = limit(per_second=10, per_minute=600), 4, 8, 2.5
    spawn = multiprocessing.get_context("spawn")
    ready, out, go, end = spawn.Queue(), spawn.Queue(), spawn.Event(), spawn.Value("d", 0.0)
    children = [spawn.Process(target=_hammer, args=(str(tmp_path / "shared"), rate, threads, ready, go, end, out))
                for _ in range(processes)]
    for child in children:
        child.start()
    try:
        for _ in children:
            ready.get(timeout=60)
        start = time.time()
        end.value = start + run_s
        go.set()
        results = [out.get(timeout=60) for _ in children]
    finally:
        for child in children:
            child.join(timeout=10)
            if child.is_alive():
                child.kill()
    recorded = [at for grants, _, _ in results for at, _ in grants]
    returned = [back for grants, _, _ in results for _, back in grants]
    latencies = [lat for _, lats, _ in results for lat in lats]

    assert busiest(recorded, 1.0) <= 10
    assert busiest(recorded, 60.0) <= 600
    assert busiest(returned, 1.0) <= 10  # as a caller sees it: MARGIN_S absorbs the jitter after the grant
    seconds = [(start + i, min(start + i + 1, start + run_s)) for i in range(int(run_s + 0.999))]
    per_second = [sum(lo <= at < hi for at in recorded) for lo, hi in seconds]
    assert all(count > 0 for count in per_second), per_second
    print(f"\n{len(recorded)} granted, {sum(r for _, _, r in results)} refused; per second {per_second}; "
          f"try_acquire median {statistics.median(latencies) * 1000:.2f} ms, "
          f"p99 {statistics.quantiles(latencies, n=100)[98] * 1000:.1f} ms, max {max(latencies) * 1000:.0f} ms; "
          f"grant-to-return max {max(b - a for a, b in zip(recorded, returned, strict=True)) * 1000:.1f} ms, "
          f"busiest 1 s by return time {busiest(returned, 1.0)}")


def test_waiting_for_a_slot_that_frees_before_the_timeout_gets_it(make_limiter):
    limiter = make_limiter(limit(per_second=2))
    assert limiter.wait_for_slot(0.1) == limiter.wait_for_slot(0.1) == 0.0
    started = time.monotonic()
    assert limiter.wait_for_slot(1.5) == 0.0
    assert 0.8 < time.monotonic() - started < 1.5
    assert 0.8 < limiter.waited_s < 1.5


def test_waiting_gives_up_at_once_when_no_slot_can_free_in_time_and_says_when_one_would(make_limiter):
    limiter = make_limiter(limit(per_second=2))
    assert limiter.wait_for_slot(0.1) == limiter.wait_for_slot(0.1) == 0.0
    started = time.monotonic()
    assert 0.3 < limiter.wait_for_slot(0.3) <= 1 + ratelimit.MARGIN_S
    assert time.monotonic() - started < 0.1
    assert limiter.waited_s == 0.0


def test_waiting_sleeps_in_bounded_steps_and_never_past_the_timeout(make_limiter, monkeypatch):
    limiter = make_limiter(limit())
    monkeypatch.setattr(limiter, "try_acquire", lambda background=False: 0.4)  # a slot keeps being just taken
    pauses: list[float] = []
    real_sleep = time.sleep
    monkeypatch.setattr(ratelimit.time, "sleep", lambda s: (pauses.append(s), real_sleep(s)))
    started = time.monotonic()
    assert limiter.wait_for_slot(1.0) == 0.4
    assert time.monotonic() - started <= 1.0
    assert len(pauses) == 3 and all(p <= ratelimit.MAX_SLEEP_S for p in pauses)
    assert limiter.waited_s == pytest.approx(sum(pauses))


def test_describe_names_the_binding_limit_its_source_and_when_to_retry():
    free = RateLimit(10, 50.0, None, "limits.json coingecko/free")
    assert describe(free, 1.23) == ("provider rate limit reached (50 calls per minute, limits.json coingecko/free); "
                                    "retry in 1.3 s")
    assert describe(free, 0.4) == ("provider rate limit reached (10 calls per second, limits.json coingecko/free); "
                                   "retry in 0.4 s")
    assert "10 calls per second" in describe(free, 1.0 + MARGIN_S)
    pro = RateLimit(None, 500.0, 6900, "limits.json coingecko/pro")
    assert describe(pro, 120.2) == ("provider rate limit reached (6900 calls per hour, limits.json coingecko/pro); "
                                    "retry in 121 s")
    one = RateLimit(None, 1.0, None, "RATE_LIMIT_CAPACITY settings")
    assert describe(one, 30) == ("provider rate limit reached (1 call per minute, RATE_LIMIT_CAPACITY settings); "
                                 "retry in 30 s")


def test_hour_window_and_usage_slide_with_the_clock(make_limiter):
    limiter = make_limiter(limit(per_minute=2, per_hour=3), cls=ClockLimiter)
    t0 = limiter.clock
    assert [limiter.try_acquire() for _ in range(2)] == [0.0, 0.0]
    assert limiter.try_acquire() == pytest.approx(60 + MARGIN_S)
    limiter.clock = t0 + 60 + MARGIN_S
    assert limiter.try_acquire() == 0.0
    assert limiter.usage() == {"60s": 1, "3600s": 3}
    limiter.clock = t0 + 120
    assert limiter.try_acquire() == pytest.approx(3480 + MARGIN_S)  # the minute has room; the hour does not
    limiter.clock = t0 + 3600 + MARGIN_S
    assert limiter.usage() == {"60s": 0, "3600s": 1}
    assert limiter.try_acquire() == 0.0


def test_a_clock_stepping_back_keeps_the_spacing_instead_of_blocking(make_limiter):
    limiter = make_limiter(limit(per_second=2), cls=ClockLimiter)
    t0 = limiter.clock
    assert limiter.try_acquire() == 0.0
    limiter.clock = t0 + 0.5
    assert limiter.try_acquire() == 0.0
    limiter.clock = t0 - 100  # stepped back: the last call is taken as "now", the first as half a second before
    assert limiter.try_acquire() == pytest.approx(0.5 + MARGIN_S)
    limiter.clock = t0 - 99.5 + MARGIN_S + 1e-6
    assert limiter.try_acquire() == 0.0
    assert limiter.try_acquire() == pytest.approx(0.5, abs=1e-5)
    assert limiter.usage() == {"1s": 2, "60s": 3}


def test_a_changed_limit_is_enforced_against_the_calls_already_made(make_limiter):
    assert [make_limiter(limit(per_minute=10)).try_acquire() for _ in range(8)] == [0.0] * 8
    lower = make_limiter(limit(per_minute=5))
    assert lower.try_acquire() > 0
    assert lower.usage() == {"60s": 8}
    higher = make_limiter(limit(per_minute=20))  # e.g. the old limit still running during a rolling restart
    assert [higher.try_acquire() for _ in range(12)] == [0.0] * 12
    assert higher.try_acquire() > 0
    assert lower.try_acquire() > 0 and lower.usage() == {"60s": 20}


def test_providers_sharing_a_directory_have_separate_quotas(make_limiter):
    a, b = make_limiter(limit(per_minute=1), name="a"), make_limiter(limit(per_minute=1), name="b")
    assert a.try_acquire() == 0.0 and b.try_acquire() == 0.0
    assert a.try_acquire() > 0 and b.try_acquire() > 0


def test_a_busy_store_means_not_yet_rather_than_an_error(make_limiter, tmp_path, monkeypatch):
    monkeypatch.setattr(ratelimit, "LOCK_TIMEOUT_S", 0.05)
    limiter = make_limiter(limit())
    holder = diskcache.Cache(str(tmp_path / "ratelimit"))
    locked, release = threading.Event(), threading.Event()

    def hold_lock() -> None:
        with holder.transact():
            locked.set()
            release.wait(5)

    thread = threading.Thread(target=hold_lock)
    thread.start()
    try:
        assert locked.wait(5)
        assert limiter.try_acquire() == ratelimit.BUSY_WAIT_S
        assert limiter.usage() == {"60s": -1}
    finally:
        release.set()
        thread.join()
        holder.close()
    assert limiter.refused == 1 and limiter.granted == 0
    assert limiter.try_acquire() == 0.0
