"""Celery workers put their start-up objects out of the garbage collector's reach
(askpro.celery.freeze_startup_objects), in the process that runs the tasks, whatever the pool."""

import gc

from celery.signals import worker_process_init, worker_ready

from askpro.celery import freeze_startup_objects


def test_it_freezes_what_start_up_loaded():
    gc.unfreeze()
    try:
        freeze_startup_objects()
        # Django and every app are loaded in the test process: far more than a bare interpreter's.
        assert gc.get_freeze_count() > 50_000
        assert gc.get_count()[0] < 100  # a full collection ran first: nothing pending
    finally:
        gc.unfreeze()


def test_it_runs_when_a_worker_or_a_prefork_child_is_ready():
    assert freeze_startup_objects in worker_ready._live_receivers(None)
    assert freeze_startup_objects in worker_process_init._live_receivers(None)
