"""Encryption at rest for tenant credentials (Fernet: AES-CBC with an HMAC, from `cryptography`)."""

import base64
import hashlib
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import models


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
