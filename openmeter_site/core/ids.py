import re

from ulid import ULID

ULID_RE = re.compile(r"^[0-7][0-9A-HJKMNP-TV-Za-hjkmnp-tv-z]{25}$")
KEY_RE = re.compile(r"^[a-z0-9]+(?:_[a-z0-9]+)*$")


def new_id() -> str:
    return str(ULID())


def is_ulid(value: str) -> bool:
    return bool(ULID_RE.match(value))
