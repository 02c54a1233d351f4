"""Getting a value from a provider, once: the adapter runtime, the requester, coalescing and rate limits.

Owns the per-adapter runtime (endpoints resolved, cache reads and writes, subscriptions), the HTTP requester
(timeouts, retries, Retry-After, size limits), single-flight coalescing within and across processes, and the
local and Redis rate limiters. The foreground and the background both fetch through here, so they share one
implementation of every credit-saving rule.

May import: ``app.core``, ``app.observe``, ``app.stores``, ``app.config``.
"""
