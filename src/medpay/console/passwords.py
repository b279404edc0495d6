"""Operators' passwords: argon2id hashes, a policy for new ones, the same time for nobody.

A username that does not exist is checked against a hash of nothing, so that the time a
refusal takes does not tell it from a wrong password. argon2-cffi's default parameters are RFC 9106's second recommendation (argon2id, 3
passes over 64 MiB, 4 lanes): about 50 ms of one core, run off the event loop. A hash
made with older parameters is replaced at the next successful login.
"""

from __future__ import annotations

import functools
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from medpay.errors import InvalidRequest

__all__ = [
    "PASSWORD_LENGTH_MAX",
    "PASSWORD_LENGTH_MIN",
    "check_new_password",
    "hash_password",
    "needs_rehash",
    "verify_password",
    "verify_without_hash",
]

PASSWORD_LENGTH_MIN = 12
#: Longer is no safer and costs the hash more: refused.
PASSWORD_LENGTH_MAX = 256

_hasher = PasswordHasher()


def check_new_password(password: str) -> str:
    """``password`` if it may be an operator's; otherwise a 400 ``password_unacceptable``."""
    if not PASSWORD_LENGTH_MIN <= len(password) <= PASSWORD_LENGTH_MAX:
        raise InvalidRequest(
            "password_unacceptable",
            "The password is not acceptable",
            f"A password has {PASSWORD_LENGTH_MIN} to {PASSWORD_LENGTH_MAX} characters.",
        )
    if not password.isprintable() or password != password.strip():
        raise InvalidRequest(
            "password_unacceptable",
            "The password is not acceptable",
            "No control characters, and no spaces at either end (they are easily lost).",
        )
    return password


def hash_password(password: str) -> str:
    """An argon2id hash of ``password`` (its own random salt, the parameters inside)."""
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """Whether ``password`` is the one hashed; a damaged hash verifies nothing."""
    try:
        return _hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


@functools.cache
def _hash_of_nothing() -> str:
    return _hasher.hash(secrets.token_urlsafe(24))


def verify_without_hash(password: str) -> bool:
    """Spend the time a check costs when there is no hash to check (an unknown username)."""
    verify_password(_hash_of_nothing(), password)
    return False


def needs_rehash(password_hash: str) -> bool:
    """Whether the hash was made with other parameters than today's."""
    try:
        return _hasher.check_needs_rehash(password_hash)
    except InvalidHashError:
        return True
