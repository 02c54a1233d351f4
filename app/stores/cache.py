"""The meeting point of readers (HTTP requests) and writers (foreground fetches and the background): which store.

One choice for the whole process: the local diskcache in ``CACHE_DIR``, or Redis when ``CACHE_TYPE=redis``,
either behind the per-process front layer (``front_cache.py``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from app.core.entries import Cache
from app.core.setting_specs import Problem
from app.core.settings import Settings

if TYPE_CHECKING:
    from app.stores.redis_client import Shared


def make_cache(settings: Settings, shared: Shared | None = None) -> tuple[Cache | None, list[Problem]]:
    """The local diskcache, or Redis when ``shared`` is given; either behind the per-process front layer,
    which with Redis is always there: it is also what answers while Redis is down."""
    from app.stores.front_cache import FrontCache

    if shared is not None:
        from app.stores.redis_cache import RedisCache

        return FrontCache(RedisCache(shared), settings.CACHE_FRONT_TTL, settings.CACHE_MAX_AGE), []
    from app.stores.local_cache import LocalCache, open_problem

    problem = open_problem(settings.CACHE_DIR)
    if problem:
        return None, [problem]
    cache: Cache = LocalCache(settings.CACHE_DIR, settings.CACHE_MAX_ITEMS)
    if settings.CACHE_FRONT_TTL:
        cache = FrontCache(cache, settings.CACHE_FRONT_TTL, settings.CACHE_MAX_AGE)
    return cache, []
