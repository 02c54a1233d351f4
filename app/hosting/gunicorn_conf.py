"""gunicorn settings for pyea, used by ``gunicorn`` in the checkout (through ``gunicorn.conf.py``) and by
``pyea serve`` (as ``-c python:app.hosting.gunicorn_conf``), so an installed pyea runs the same way as a checkout.

Bind, workers and threads come from pyea's own settings (EA_HOST, EA_PORT, EA_WORKERS, EA_THREADS). Every
setting, adapter and schema is validated before any worker forks, so a bad environment stops the start with one
clear message. The validation runs in a child process: the master then never imports Flask and the adapters,
which keeps it about 20 MiB lighter for the whole life of the service.
"""

import os
import shutil
import subprocess
import sys
import tempfile

from gunicorn.glogging import Logger

from app.core.adapter_processes import PORTS_ENV, encode_ports
from app.core.settings import Settings
from app.hosting.factory import close_app, create_app  # light: Flask is imported by workers only
from app.hosting.supervisor import SupervisorProcess, assign_ports, out_of_process_names
from app.hosting.worker import ConnectionTable
from app.observe.logs import LineFormatter
from app.web.access import exposed_without_protection

# The directory holding the ``app`` package: the checkout, or site-packages when installed.
HERE = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

_check = subprocess.run([sys.executable, "-m", "app", "check"], cwd=HERE, capture_output=True, text=True)
if _check.returncode != 0:
    print(f"pyea: {_check.stderr.strip()}", file=sys.stderr)
    sys.exit(1)
_settings = Settings.parse()[0]

# Metrics are summed over the workers from per-process files (prometheus_client's multiprocess mode). The
# directory must be set before a worker imports prometheus_client, and start empty: old files would add the
# counts of a previous run.
_own_metrics_dir = "PROMETHEUS_MULTIPROC_DIR" not in os.environ
METRICS_DIR = os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="pyea-metrics-"))
os.makedirs(METRICS_DIR, exist_ok=True)
for _name in os.listdir(METRICS_DIR):
    if _name.endswith(".db"):
        os.remove(os.path.join(METRICS_DIR, _name))

# Out-of-process adapters (<NAME>_CMD): their ports are fixed here, before any worker forks, so every worker
# routes to the same place and a restarted adapter comes back where it was. A config reload keeps them.
_out_of_process = out_of_process_names(_settings, os.environ)
if _out_of_process and PORTS_ENV not in os.environ:
    os.environ[PORTS_ENV] = encode_ports(assign_ports(_out_of_process))
_supervisor = SupervisorProcess(HERE) if _out_of_process else None


class PyeaLogger(Logger):
    """gunicorn's own lines (start, workers booting and dying) in pyea's format, so one log pipeline reads all.
    The access log, off by default, keeps the format it is given."""

    def setup(self, cfg):
        super().setup(cfg)
        formatter = LineFormatter(pretty=_settings.LOG_FORMAT == "pretty")
        for handler in self.error_log.handlers:
            handler.setFormatter(formatter)


wsgi_app = "app:create_app()"
logger_class = PyeaLogger
loglevel = "warning" if _settings.LOG_LEVEL == "warn" else _settings.LOG_LEVEL
bind = [f"[{_settings.EA_HOST}]:{_settings.EA_PORT}" if ":" in _settings.EA_HOST else
        f"{_settings.EA_HOST}:{_settings.EA_PORT}"]
# gthread, accepting new connections fairly across the workers (app/hosting/worker.py): the table of connections each
# worker holds is mapped here, in the master, so every forked worker shares it.
worker_class = "app.hosting.worker.FairThreadWorker"
_connections = ConnectionTable()
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


def when_ready(server):
    """The master starts the adapters' supervisor, and serves METRICS_PORT: it outlives any worker, and reads
    every worker's files."""
    if exposed_without_protection(_settings):
        server.log.warning("pyea listens on %s without EA_AUTH_TOKEN or EA_ALLOWED_IPS: anyone who can reach "
                           "that address can use it; set one, or bind 127.0.0.1", _settings.EA_HOST)
    if _supervisor is not None:
        _supervisor.start()
    if not _settings.metrics_enabled or _settings.METRICS_USE_BASE_URL:
        return
    from prometheus_client import CollectorRegistry, start_http_server
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry()
    MultiProcessCollector(registry)
    try:
        start_http_server(_settings.METRICS_PORT, addr=_settings.EA_HOST, registry=registry)
    except OSError as exc:
        server.log.error("metrics: cannot listen on %s:%s (%s); serving without metrics", _settings.EA_HOST,
                         _settings.METRICS_PORT, exc)


pre_fork = _connections.attach


def child_exit(server, worker):
    """A dead worker's live gauges must not be reported any more, nor its connections counted."""
    from prometheus_client.multiprocess import mark_process_dead

    mark_process_dead(worker.pid)
    _connections.release(server, worker)


def on_exit(server):
    if _supervisor is not None:
        _supervisor.stop()
    if _own_metrics_dir:
        shutil.rmtree(METRICS_DIR, ignore_errors=True)


def post_worker_init(worker):
    """``gunicorn app:create_app`` hands over the factory itself; build the real app at boot instead."""
    if worker.wsgi is create_app:
        worker.wsgi = create_app()


def worker_exit(server, worker):
    wsgi = getattr(worker, "wsgi", None)
    if wsgi is not None and wsgi is not create_app:
        close_app(wsgi)
