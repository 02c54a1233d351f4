"""A stand-in for an out-of-process adapter, run as ``<NAME>_CMD``: any command that serves ``/health`` and
``/metrics`` on 127.0.0.1:$EA_PORT is a worker, so the host's supervision and proxy are tested against a process
whose misbehaviour the test chooses.

    stub_worker.py [--metrics-delay S] [--health-status N] [--exit-code N] [--record FILE]

``--record`` appends the time of each start to FILE.

A POST is answered 201 with what the worker received (path, body, headers, parts of its environment).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

METRICS = "# TYPE stub_scrapes_total counter\nstub_scrapes_total 1.0\n"
OPENMETRICS = METRICS + "# EOF\n"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--metrics-delay", type=float, default=0.0)
    parser.add_argument("--health-status", type=int, default=200)
    parser.add_argument("--exit-code", type=int, default=None)
    parser.add_argument("--record", default=None)
    args = parser.parse_args()
    if args.record:
        with open(args.record, "a") as record:
            record.write(f"{time.time()}\n")
    if args.exit_code is not None:
        return args.exit_code

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/health":
                self._send(args.health_status, "application/json", b'{"message": "stub"}')
            elif self.path == "/metrics":
                time.sleep(args.metrics_delay)
                if "application/openmetrics-text" in self.headers.get("Accept", ""):
                    self._send(200, "application/openmetrics-text; version=1.0.0; charset=utf-8", OPENMETRICS.encode())
                else:
                    self._send(200, "text/plain; version=0.0.4; charset=utf-8", METRICS.encode())
            else:
                self._send(404, "application/json", b"{}")

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            echo = {"path": self.path, "body": body.decode(), "contentType": self.headers.get("Content-Type"),
                    "correlationId": self.headers.get("X-Correlation-Id"),
                    "env": {k: os.environ.get(k) for k in ("ADAPTERS", "EA_HOST", "PYEA_PREFIXED_SETTINGS_ONLY",
                                                           "COINMARKETCAP_CMD", "PROMETHEUS_MULTIPROC_DIR",
                                                           "METRICS_USE_BASE_URL")}}
            self._send(201, "application/json", json.dumps(echo).encode())

        def _send(self, status: int, content_type: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            with contextlib.suppress(BrokenPipeError):  # the host gave up waiting, as it must on a slow worker
                self.wfile.write(body)

        def log_message(self, *_: object) -> None:
            pass

    server = ThreadingHTTPServer((os.environ["EA_HOST"], int(os.environ["EA_PORT"])), Handler)
    server.daemon_threads = True
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
