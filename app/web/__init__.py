"""The request path: from a WSGI environ to the bytes the node is sent.

Owns the WSGI entry (cache hits answered without Flask), the request pipeline read top to bottom
(``request_path.py``), access control, service discovery, the OpenAPI document and the proxy to out-of-process
adapters.

May import: ``app.core``, ``app.observe``, ``app.stores``, ``app.config``, ``app.fetch``; not
``app.background``.
"""
