from .celery_worker import celery_worker_factory  # noqa: F401
