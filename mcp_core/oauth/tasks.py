from celery import shared_task


@shared_task(name="oauth.clear_expired")
def clear_expired_task() -> None:
    """Deletes expired and long-revoked grants and tokens (django-oauth-toolkit's cleartokens)."""
    from oauth2_provider.models import clear_expired

    clear_expired()
