"""For adapter authors and pyea's own tests: the test kit, the pytest plugin, the scaffold and ``pyea check``.

Owns fake providers (HTTP, websocket, SSE) on loopback, node requests, a real gunicorn process for tests, the
pytest fixtures installed with pyea, ``pyea new`` and its templates, and the wiring check. Authors reach it
through ``app.sdk``.

May import: every layer.
"""
