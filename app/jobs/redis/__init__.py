"""Scale-out mode: jobs in Redis, events over Redis pub/sub, the queue on taskiq-redis.

Every API process and every ``jmbooru worker`` shares one Redis and one data folder. Redis may
go away and come back (a restart, a failover): every part here reconnects with backoff and keeps
running, and while Redis is down the job endpoints answer 503 with a sentence.
"""

from __future__ import annotations

from taskiq import AsyncBroker

from app.archive_store import ArchiveStore
from app.blocking import BlockingPool
from app.config import Settings
from app.jobs.redis.events import RedisEventHub
from app.jobs.redis.queue import TASK_NAME, TaskiqJobQueue, make_broker
from app.jobs.redis.store import RedisJobStore, connect
from app.jobs.runner import Runner
from app.jobs.service import JobService
from app.storage import Storage

__all__ = ["TASK_NAME", "RedisEventHub", "RedisJobStore", "TaskiqJobQueue", "build_redis_service", "make_broker"]


def build_redis_service(settings: Settings, storage: Storage, runners: dict[str, Runner],
                        files_pool: BlockingPool, *, broker: AsyncBroker | None = None,
                        is_worker: bool = False, archives: ArchiveStore | None = None,
                        folders_pool: BlockingPool | None = None) -> JobService:
    redis = connect(settings.redis_url)
    hub = RedisEventHub(redis)
    queue = TaskiqJobQueue(broker or make_broker(settings), hub, redis, is_worker=is_worker)
    return JobService(settings, storage, RedisJobStore(redis), hub, queue, runners, files_pool,
                      reconcile_on_start=False, archives=archives, folders_pool=folders_pool)
