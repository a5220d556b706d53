"""Secrets of third parties (Stripe API keys, webhook secrets) are stored encrypted (Fernet).

The key derives from OPENMETER_ENCRYPTION_KEY, else SECRET_KEY. Secrets written while the server ran on the
development SECRET_KEY (before bin/run generated one, or an old install) stay readable: that key is tried second,
and anything saved again is encrypted with the current one.
"""

import base64
import hashlib
from functools import cache

from cryptography.fernet import Fernet, MultiFernet
from django.conf import settings

from openmeter_site.settings.env import DEVELOPMENT_SECRET_KEY


def _fernet_of(material: str) -> Fernet:
    return Fernet(base64.urlsafe_b64encode(hashlib.sha256(material.encode()).digest()))


@cache
def _fernet(material: str) -> MultiFernet:
    keys = [_fernet_of(material)]
    if material != DEVELOPMENT_SECRET_KEY:
        keys.append(_fernet_of(DEVELOPMENT_SECRET_KEY))
    return MultiFernet(keys)


def _current() -> MultiFernet:
    return _fernet(settings.OPENMETER_ENCRYPTION_KEY or settings.SECRET_KEY)


def encrypt(plain: str) -> str:
    return _current().encrypt(plain.encode()).decode()


def decrypt(token: str) -> str:
    return _current().decrypt(token.encode()).decode()


def mask_secret(secret: str) -> str:
    """OpenMeter's mask: the first 8 and last 3 characters."""
    return f"{secret[:8]}***{secret[-3:]}" if len(secret) > 11 else "***"
