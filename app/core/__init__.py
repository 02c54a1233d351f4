"""The I/O-free core: what an adapter declares and what the node is answered, as plain data and pure functions.

Owns errors, settings and their reference, adapter and endpoint declarations, input validation, cache entries
and keys, provider limits, retry timing, strict JSON, message helpers, answers and their rendering, and the
transport contract (``transports/``). Nothing here opens a file, a socket or a database, or imports Flask,
requests, Redis or diskcache: it is light enough for gunicorn's master, and every other layer builds on it (the
idea of Flask's ``sansio``).

May import: the standard library, jsonschema; nothing else of pyea.
"""
