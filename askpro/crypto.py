"""Encryption at rest for tenant credentials (Fernet: AES-CBC with an HMAC, from `cryptography`)."""

import base64
import hashlib
from datetime import datetime
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import models
from django.utils import timezone
from django.utils.crypto import salted_hmac


@lru_cache(maxsize=1)
def _fernet() -> MultiFernet:
    raw = settings.CREDENTIALS_ENCRYPTION_KEY
    if raw:
        # Several comma-separated keys allow rotation: the first encrypts, all decrypt.
        try:
            keys = [Fernet(key.strip().encode()) for key in raw.split(",") if key.strip()]
        except ValueError:
            raise ImproperlyConfigured(
                "CREDENTIALS_ENCRYPTION_KEY: expected Fernet keys (32 url-safe base64 bytes each)"
            ) from None
        return MultiFernet(keys)
    if not settings.DEBUG:
        raise ImproperlyConfigured("CREDENTIALS_ENCRYPTION_KEY: required when DEBUG is off")
    derived = base64.urlsafe_b64encode(hashlib.sha256(settings.SECRET_KEY.encode()).digest())
    return MultiFernet([Fernet(derived)])


def encrypt(plaintext: str) -> str:
    return _fernet().encrypt(plaintext.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken:
        # Never echo the token: it is a secret, even encrypted.
        raise ImproperlyConfigured(
            "A stored credential cannot be decrypted with CREDENTIALS_ENCRYPTION_KEY"
        ) from None


class EncryptedTextField(models.TextField):
    """A text column stored encrypted; Python code sees the plaintext, the database never does."""

    def from_db_value(self, value, expression, connection):
        if value is None or value == "":
            return value
        return decrypt(value)

    def get_prep_value(self, value):
        value = super().get_prep_value(value)
        if value is None or value == "":
            return value
        return encrypt(value)


def secret_field_names(model) -> tuple[str, ...]:
    """The names of a model's encrypted (secret) fields, in declaration order."""
    return tuple(f.name for f in model._meta.concrete_fields if isinstance(f, EncryptedTextField))


def secret_fingerprint(value: str) -> str:
    """8 hex characters that tell two secrets apart without revealing either: a keyed hash
    (HMAC-SHA256 under SECRET_KEY), never a prefix of the secret, so it cannot be brute-forced
    offline by someone who sees only the admin."""
    if not value:
        return ""
    return salted_hmac("askpro.crypto.secret_fingerprint", value, algorithm="sha256").hexdigest()[:8]


class SecretsModel(models.Model):
    """Abstract base of a model with encrypted fields: remembers when each one was last written.

    `secrets_changed_at` maps a field name to an ISO timestamp. It is stamped on save() for
    every secret whose value differs from the one loaded (or, for a new row, that is set), so
    every writer — the admin, a command, a service — keeps it right without knowing about it.
    A queryset .update() of a secret bypasses save() and is not stamped.
    """

    secrets_changed_at = models.JSONField(default=dict, blank=True, editable=False)

    class Meta:
        abstract = True

    def save(self, *args, **kwargs):
        stored = getattr(self, "_stored_secrets", {})
        update_fields = kwargs.get("update_fields")
        names = secret_field_names(type(self))
        if update_fields is not None:
            names = tuple(n for n in names if n in update_fields)
        changed = [
            name
            for name in names
            if name not in self.get_deferred_fields()
            and getattr(self, name) != stored.get(name, "" if self._state.adding else getattr(self, name))
        ]
        if changed:
            now = timezone.now().isoformat()
            self.secrets_changed_at = {**(self.secrets_changed_at or {}), **dict.fromkeys(changed, now)}
            if update_fields is not None:
                kwargs["update_fields"] = {*update_fields, "secrets_changed_at"}
        super().save(*args, **kwargs)
        self._remember_secrets()

    @classmethod
    def from_db(cls, db, field_names, values):
        instance = super().from_db(db, field_names, values)
        instance._remember_secrets()
        return instance

    def _remember_secrets(self, names=None) -> None:
        loaded = self.get_deferred_fields()
        stored = getattr(self, "_stored_secrets", {})
        for name in names or secret_field_names(type(self)):
            if name in secret_field_names(type(self)) and name not in loaded:
                stored[name] = getattr(self, name)
        self._stored_secrets = stored

    def refresh_from_db(self, using=None, fields=None, from_queryset=None):
        super().refresh_from_db(using=using, fields=fields, from_queryset=from_queryset)
        self._remember_secrets(fields)

    def secret_changed_at(self, name: str):
        """When the secret `name` was last written, or None if unknown (set before tracking)."""
        raw = (self.secrets_changed_at or {}).get(name)
        return datetime.fromisoformat(raw) if raw else None
