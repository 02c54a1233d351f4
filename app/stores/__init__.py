"""Where state lives between requests and across workers: the cache, the subscriptions, the lease.

Owns the cache backends (a per-process front layer over diskcache or Redis), the subscription stores that say
which feeds to keep warm, the background lease that elects one leader, and the Redis client they share. Each
store hides its backend, so the layers above never know whether a value came from SQLite or Redis.

May import: ``app.core``, ``app.observe``.
"""
