"""Staff users with chosen permissions, for the admin tests."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission

PASSWORD = "a-long-test-password-1"


def make_staff(username: str, *, perms=(), superuser: bool = False):
    """A staff user holding the given permissions ("app_label.codename" or Permission rows)."""
    user_model = get_user_model()
    if superuser:
        return user_model.objects.create_superuser(username, f"{username}@example.com", PASSWORD)
    user = user_model.objects.create_user(username, f"{username}@example.com", PASSWORD, is_staff=True)
    rows = []
    for perm in perms:
        if isinstance(perm, Permission):
            rows.append(perm)
        else:
            app_label, codename = perm.split(".")
            rows.append(Permission.objects.get(content_type__app_label=app_label, codename=codename))
    user.user_permissions.add(*rows)
    return user
