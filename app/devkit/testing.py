"""Test kit: node requests, waiting for behaviour, and a real gunicorn running pyea.

Nothing is mocked: ``GunicornProcess`` runs the same command an operator runs, and the fake providers
(``fake_http.py``, ``fake_ws.py``) are real servers on loopback. Tests and benchmarks share these so they
measure the same thing.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import requests

from app.devkit.fake_http import free_port

if TYPE_CHECKING:
    from app.core.transports import Sender

REPO = Path(__file__).resolve().parents[2]


class GunicornProcess:
    """``gunicorn`` run from the repository as an operator would, on a free loopback port.

    ``cwd`` is the directory gunicorn starts in (its ``gunicorn.conf.py``, if any, applies); the app must
    answer ``GET /health`` with 200 once it is ready.
    """

    def __init__(self, env: Mapping[str, str], args: Sequence[str] = ("app:create_app()",),
                 port: int | None = None, log_path: Path | None = None, cwd: Path = REPO,
                 tls_cert: Path | None = None) -> None:
        """``tls_cert``: the certificate gunicorn serves (its ``--certfile``); the URL is then https and
        trusts exactly that certificate."""
        self.cwd = cwd
        self.port = port or free_port()
        host = env.get("EA_HOST", "127.0.0.1").removeprefix("[").removesuffix("]")
        self.url = f"{'https' if tls_cert else 'http'}://{f'[{host}]' if ':' in host else host}:{self.port}"
        self.verify: str | bool = str(tls_cert) if tls_cert else True
        self.metrics_port = int(env.get("METRICS_PORT") or free_port())
        self.env = {**os.environ, "EA_HOST": "127.0.0.1", "EA_PORT": str(self.port),
                    "METRICS_PORT": str(self.metrics_port), **env}
        self.args = args
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None

    def start(self, timeout_s: float = 20.0) -> GunicornProcess:
        out = open(self.log_path, "wb") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        self.proc = subprocess.Popen([sys.executable, "-m", "gunicorn", *self.args], cwd=self.cwd, env=self.env,
                                     stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {self.proc.returncode}: {self.log()}")
            try:
                if requests.get(f"{self.url}/health", timeout=1, verify=self.verify).status_code == 200:
                    return self
            except requests.RequestException:
                pass  # not listening yet, or a worker still booting
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"gunicorn did not answer /health within {timeout_s} s: {self.log()}")

    def stop(self, timeout_s: float = 20.0) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:] if self.log_path and self.log_path.exists() else ""

    def __enter__(self) -> GunicornProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def node_request(client: Any, data: Mapping[str, Any] | None = None, endpoint: str | None = None,
                 path: str = "/", **body: Any) -> Any:
    """POST ``{"id": "1", "data": data}`` the way a Chainlink bridge task does, through a Flask test client
    (``client.post``) or a ``requests.Session``-like object with a base URL given as ``path``."""
    payload: dict[str, Any] = {"id": "1", "data": dict(data) if data is not None else {"base": "ETH",
                                                                                          "quote": "USD"}, **body}
    if endpoint is not None:
        payload["endpoint"] = endpoint
    return client.post(path, json=payload)


def wait_for(condition: Callable[[], Any], timeout_s: float, what: str, interval_s: float = 0.01) -> Any:
    """Poll ``condition`` until it returns something truthy (returned), failing with ``what`` after
    ``timeout_s``. Tests wait for behaviour this way instead of sleeping a fixed time."""
    deadline = time.monotonic() + timeout_s
    while not (result := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout_s} s: {what}")
        time.sleep(interval_s)
    return result


def provider_sender(timeout_ms: int = 2000, retries: int = 0) -> Sender:
    """A ``Sender`` straight to the provider (no rate limit, no cache), for calling a transport's ``fetch`` in a
    test as the framework would."""
    from app.fetch.requester import Requester

    return Requester(timeout_ms=timeout_ms, retries=retries, pool_size=2)
