"""gunicorn config for the baselines (``-c bench/baseline_conf.py``): the worker pyea runs, with the table it
shares connections fairly by, as pyea's own gunicorn config sets it up. Without it a baseline's workers race for
each new connection, one often wins them all and serves on one core, and pyea would be compared with a server
measuring less than the machine."""

from app.hosting.worker import ConnectionTable

_connections = ConnectionTable()
pre_fork = _connections.attach
child_exit = _connections.release
