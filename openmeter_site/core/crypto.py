"""Secrets of third parties (Stripe API keys, webhook secrets) are stored encrypted (Fernet)."""

import base64
import hashlib
from functools import cache

from cryptography.fernet import Fernet
from django.conf import settings


@cache
def _fernet() -> Fernet:
    material = settings.OPENMETER_ENCRYPTION_KEY or settings.SECRET_KEY
    return Fernet(base64.urlsafe_b64encode(hashlib.sha256(material.encode()).digest()))


def encrypt(plain: str) -> str:
    return _fernet().encrypt(plain.encode()).decode()


def decrypt(token: str) -> str:
    return _fernet().decrypt(token.encode()).decode()


def mask_secret(secret: str) -> str:
    """OpenMeter's mask: the first 8 and last 3 characters."""
    return f"{secret[:8]}***{secret[-3:]}" if len(secret) > 11 else "***"
