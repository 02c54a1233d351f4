#!/usr/bin/env python
"""Where a cache hit's time goes, in-process: pyea's WSGI app called directly, beside the bare Flask route and a
raw WSGI callable answering the same bytes, then the hit profiled (pyinstrument when installed, else cProfile).

No gunicorn and no sockets, so this isolates the framework's own cost; run it before and after a change to the
hot path.

    python -m bench.profile_hit [--requests 20000]
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

BODY = b'{"id":"1","data":{"base":"ETH","quote":"USD"}}'
WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def environ() -> dict[str, Any]:
    return {"REQUEST_METHOD": "POST", "PATH_INFO": "/", "SCRIPT_NAME": "", "QUERY_STRING": "",
            "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "8080", "SERVER_PROTOCOL": "HTTP/1.1",
            "CONTENT_TYPE": "application/json", "CONTENT_LENGTH": str(len(BODY)), "wsgi.input": io.BytesIO(BODY),
            "wsgi.url_scheme": "http", "wsgi.errors": sys.stderr, "wsgi.multithread": True,
            "wsgi.multiprocess": True, "wsgi.run_once": False, "wsgi.version": (1, 0), "REMOTE_ADDR": "127.0.0.1",
            "HTTP_HOST": "127.0.0.1:8080"}


def call(app: WsgiApp) -> bytes:
    statuses = []
    out = app(environ(), lambda status, headers, exc_info=None: statuses.append(status))
    body = b"".join(out)
    getattr(out, "close", lambda: None)()
    if not statuses or not statuses[0].startswith("200"):
        raise SystemExit(f"not a 200: {statuses} {body[:200]!r}")
    return body


def us_per_request(app: WsgiApp, n: int) -> float:
    started = time.perf_counter()
    for _ in range(n):
        call(app)
    return (time.perf_counter() - started) / n * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=20000)
    args = parser.parse_args()
    # As under gunicorn: metrics go to multiprocess files, which is what a hit pays for.
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="pyea-profile-metrics-")
    from app import close_app, create_app
    from app.devkit.fake_http import FakeProvider

    with FakeProvider() as provider, tempfile.TemporaryDirectory() as cache_dir:
        app = create_app(env={"API_ENDPOINT": provider.url, "CACHE_DIR": cache_dir, "LOG_LEVEL": "warning",
                              "CACHE_MAX_AGE": "3600000"})
        answer = call(app)
        os.environ["BARE_BODY_FILE"] = body_file = os.path.join(cache_dir, "body.json")
        Path(body_file).write_bytes(answer)
        from bench import bare_app, raw_app

        apps = {"pyea": app, "bare Flask": bare_app.create_app(), "raw WSGI": raw_app.create_app()}
        for name, target in apps.items():
            us_per_request(target, 2000)  # warm-up
            best = min(us_per_request(target, 5000) for _ in range(3))
            print(f"{name:11} {best:7.1f} us per request (best of 3 x 5000)")
        profile(lambda: [call(app) for _ in range(args.requests)])
        close_app(app)
    return 0


def profile(work: Callable[[], Any]) -> None:
    try:
        from pyinstrument import Profiler
    except ImportError:
        import cProfile
        import pstats

        profiler = cProfile.Profile()
        profiler.runcall(work)
        pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
        return
    with Profiler(interval=0.0001) as profiler:
        work()
    print(profiler.output_text(unicode=True, color=False))


if __name__ == "__main__":
    sys.exit(main())
