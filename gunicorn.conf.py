"""gunicorn settings for pyea: ``gunicorn`` alone (or ``gunicorn 'app:create_app()'``) reads this file.

Bind, workers and threads come from pyea's own settings (EA_HOST, EA_PORT, EA_WORKERS, EA_THREADS), and every
setting is validated here in the master, so a bad environment stops the start with one clear message before
any worker forks.
"""

import os
import sys

# Import the app beside this file (the checkout being run), not a stale installed copy.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from app import close_app, create_app
from app.host import load_config
from app.settings import SettingsError

try:
    _settings = load_config().settings
except SettingsError as exc:
    print(f"pyea: {exc}", file=sys.stderr)
    sys.exit(1)

wsgi_app = "app:create_app()"
bind = [f"{_settings.EA_HOST}:{_settings.EA_PORT}"]
worker_class = "gthread"
workers = _settings.EA_WORKERS
threads = _settings.EA_THREADS
# Requests are answered from cache in milliseconds; a worker silent for this long is stuck, not busy.
timeout = max(30, _settings.API_TIMEOUT * (_settings.RETRY + 1) // 1000 + 10)
graceful_timeout = 20
keepalive = 5
# Workers must each open their own cache handle and HTTP session: never build the app before forking.
preload_app = False
# gunicorn >= 24 opens a control socket at one fixed path per user; several instances on a VM would collide.
control_socket_disable = True


def post_worker_init(worker):
    """``gunicorn app:create_app`` hands over the factory itself; build the real app at boot instead."""
    if worker.wsgi is create_app:
        worker.wsgi = create_app()


def worker_exit(server, worker):
    wsgi = getattr(worker, "wsgi", None)
    if wsgi is not None and wsgi is not create_app:
        close_app(wsgi)
