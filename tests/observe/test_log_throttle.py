"""A failure repeated on every request is logged once per interval, however many threads hit it."""

from __future__ import annotations

import threading
import time

from app.observe.logs import LogThrottle


def test_one_line_per_interval_across_threads():
    throttle = LogThrottle(0.2)
    granted: list[bool] = []
    start = threading.Barrier(16)

    def hit() -> None:
        start.wait()
        granted.extend(throttle.ready() for _ in range(100))

    threads = [threading.Thread(target=hit) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert granted.count(True) == 1 and len(granted) == 1600
    time.sleep(0.25)
    assert throttle.ready() and not throttle.ready()
