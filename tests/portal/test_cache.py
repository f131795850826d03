"""The Redis cache backend keeps one Redis client per connection pool (portal/cache.py)."""

from __future__ import annotations

import os

import pytest
from django.core.cache import caches

from portal.api import throttling
from tests.portal.test_settings import manage


@pytest.fixture
def redis_cache(settings):
    broker = os.environ.get("CELERY_BROKER_URL", "")
    if not broker.startswith("redis://"):
        pytest.skip("needs Redis: set CELERY_BROKER_URL=redis://... (CI does)")
    settings.CACHES = {
        "default": {
            "BACKEND": "portal.cache.RedisCache",
            "LOCATION": broker,
            "KEY_PREFIX": f"cache-test-{os.getpid()}",
        }
    }
    store = caches["default"]
    yield store
    store.clear()


def test_one_client_serves_every_call(redis_cache):
    client = redis_cache._cache.get_client("a", write=True)
    assert redis_cache._cache.get_client("b") is client
    redis_cache.set("k", {"v": 1}, 30)
    assert redis_cache.get("k") == {"v": 1}
    assert redis_cache._cache.get_client("c", write=True) is client
    assert redis_cache.add("k2", 1, 30)
    assert redis_cache.incr("k2") == 2
    assert throttling._incr("throttle:test:cache", 60) == (1, 0)  # the pipelined path


def test_a_redis_cache_url_selects_it(tmp_path):
    shell = "from django.conf import settings; print(settings.CACHES['default']['BACKEND'])"
    redis = manage(
        "shell", "-c", shell, env={"CACHE_URL": "redis://127.0.0.1:6379/3"}, tmp_path=tmp_path
    )
    assert redis.stdout.strip().splitlines()[-1] == "portal.cache.RedisCache", redis.stderr
    files = manage("shell", "-c", shell, env={}, tmp_path=tmp_path)
    assert files.stdout.strip().splitlines()[-1].endswith("FileBasedCache"), files.stderr
