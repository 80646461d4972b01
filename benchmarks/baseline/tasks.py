from celery import shared_task


@shared_task(queue="default", ignore_result=True)
def baseline_noop(key: str) -> None:
    """Trivial: the benchmark measures the cost of enqueueing it, not of running it."""
