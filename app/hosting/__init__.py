"""Running the service: the host that builds a process's parts, its Flask routes, gunicorn and the supervisor.

Owns ``create_app`` (the application factory), the ``Host`` that wires config, stores, runtimes and the
background of one process, the Flask routes around the request path, gunicorn's configuration and fair-accept
worker, and the supervisor of out-of-process adapters.

May import: every layer below it (``app.core`` to ``app.web``); not ``app.devkit``.
"""
