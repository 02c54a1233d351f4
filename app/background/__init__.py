"""Work no request waits for: warming, streams, and asynchronous answers.

Owns the lease-holding scheduler and its refresh jobs, the warmer that refreshes subscribed feeds in batches,
the websocket and SSE stream threads, and the responder that PATCHes late answers to the node. Nothing here is
on a request thread.

May import: ``app.core``, ``app.observe``, ``app.stores``, ``app.config``, ``app.fetch``; not ``app.web``.
"""
