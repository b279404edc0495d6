"""Operators' passwords: argon2id hashes, a policy for new ones, the same time for nobody.

The cost is argon2-cffi's default, RFC 9106's second recommendation (argon2id, 3 passes
over 64 MiB, 4 lanes: about 50 ms of one core here), run off the event loop; a
deployment may raise it (``MEDPAY_CONSOLE_PASSWORD_*``), and a hash made at another cost
is replaced at the next successful login. A username that does not exist is checked
against a hash of nothing, so a refusal takes as long either way.
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
    "PasswordHashing",
    "check_new_password",
]

PASSWORD_LENGTH_MIN = 12
#: Longer is no safer and costs the hash more: refused.
PASSWORD_LENGTH_MAX = 256


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


class PasswordHashing:
    """argon2id at one cost: hashing new passwords, verifying any (its cost is in the hash)."""

    def __init__(self, *, time_cost: int = 3, memory_kib: int = 64 * 1024, parallelism: int = 4):
        self._hasher = PasswordHasher(
            time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism
        )

    def hash(self, password: str) -> str:
        """An argon2id hash of ``password`` (its own random salt, the parameters inside)."""
        return self._hasher.hash(password)

    def verify(self, password_hash: str, password: str) -> bool:
        """Whether ``password`` is the one hashed; a damaged hash verifies nothing."""
        try:
            return self._hasher.verify(password_hash, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def verify_without_hash(self, password: str) -> bool:
        """Spend the time a check costs when there is no hash to check (an unknown username)."""
        self.verify(self._hash_of_nothing, password)
        return False

    @functools.cached_property
    def _hash_of_nothing(self) -> str:
        return self._hasher.hash(secrets.token_urlsafe(24))

    def needs_rehash(self, password_hash: str) -> bool:
        """Whether the hash was made at another cost than this one's."""
        try:
            return self._hasher.check_needs_rehash(password_hash)
        except InvalidHashError:
            return True
