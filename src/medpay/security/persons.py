"""Person identifiers at rest: a keyed hash to find a person by, a sealed copy to read back.

Issue 12, item 3: a dump of the database alone must not reveal who was treated. So no
table holds a person number (``psn_no``) or a name in the clear:

* every ``psn_no`` column holds the person's **reference**, ``HMAC-SHA256(k_ref, psn_no)``
  cut to 128 bits (32 hex digits; PostgreSQL's checks refuse anything else, migration
  0060). It is deterministic, so lookups, joins, the exclusion constraints and
  reconciliation's matching work on it unchanged, and it cannot be reversed or
  recomputed without the key;
* ``persons.sealed`` holds the number and the name, sealed with AES-256-GCM under
  ``k_seal`` and bound to the row's reference (associated data), so a sealed copy moved
  to another person's row does not open. It is opened where a number must leave the
  gateway: a message to the province, an answer to the person's own app or agency.

Both keys are derived (HKDF-SHA256, one ``info`` each) from one configured key of 32
random bytes: ``MEDPAY_PERSON_KEY`` (base64) or the file ``MEDPAY_PERSON_KEY_FILE``
names; never the repository. ``medpay run`` makes a development key in its data folder.

The key is the process's, like its logging configuration: every registry's queries need
it, and the gateway, the CLI and the scripts each install it once at start with
:func:`use_person_key` (one key per process; the tests install one for the run). The
numbers held in memory stay the numbers the domain speaks of; :func:`person_ref` turns
one into what the database holds, at the query that needs it.

Cost (docs/privacy.md): a reference about 2 µs (remembered for the last 65,536
numbers), a seal or an open about 1.5 µs; about 10 µs per payment in all.

Security: foundations and ``security.secrets`` (whose AES-256-GCM sealing it reuses) only.
"""

from __future__ import annotations

import functools
import hmac
import re
from typing import TYPE_CHECKING, Any, Final

import msgspec

from medpay.privacy import masked_text
from medpay.security.secrets import SealedSecretInvalid, SecretSealer, parse_key

if TYPE_CHECKING:
    from medpay.schemas import Row

__all__ = [
    "PERSON_REF_PATTERN",
    "PersonIdentifiers",
    "PersonKey",
    "PersonKeyMissing",
    "SealedPersonInvalid",
    "by_reference",
    "open_person",
    "opened",
    "person_key",
    "person_ref",
    "psn_no_of",
    "seal_person",
    "use_person_key",
]

#: What a ``psn_no`` column holds: 32 lowercase hex digits.
PERSON_REF_PATTERN: Final = re.compile(r"^[0-9a-f]{32}$")
_REF_BYTES: Final = 16
_encoder = msgspec.json.Encoder()
#: Fields of the national interfaces that name a person, kept by reference when a
#: partner's document is stored as it came (psn_no, mdtrt_cert_no, certno, psn_cert_no).
_IDENTIFYING = frozenset({"psn_no", "mdtrt_cert_no", "certno", "psn_cert_no", "psnNo", "idNo"})
#: ... and fields that name them in words, dropped (psn_name, the mobile psnName).
_NAMING = frozenset({"psn_name", "psnName"})


class PersonKeyMissing(RuntimeError):
    """No person key was installed in this process (see :func:`use_person_key`)."""

    def __init__(self) -> None:
        super().__init__(
            "no person key: set MEDPAY_PERSON_KEY or MEDPAY_PERSON_KEY_FILE (32 bytes, base64)"
        )


class SealedPersonInvalid(ValueError):
    """A sealed person does not open: another key, another row, or altered."""


class PersonIdentifiers(msgspec.Struct, frozen=True):
    """What a sealed copy holds."""

    psn_no: str  # psn_no
    name: str  # psn_name


_decoder = msgspec.json.Decoder(PersonIdentifiers)


class PersonKey:
    """The two keys derived from the configured person key; see the module docstring."""

    def __init__(self, key: bytes | str) -> None:
        derive = SecretSealer(parse_key(key) if isinstance(key, str) else key).subkey
        self._ref_key = derive("medpay person reference v1")
        self._sealer = SecretSealer(derive("medpay person seal v1"))
        self.ref = functools.lru_cache(maxsize=65_536)(self._ref)

    def _ref(self, psn_no: str) -> str:
        return hmac.digest(self._ref_key, psn_no.encode(), "sha256")[:_REF_BYTES].hex()

    def seal(self, person: PersonIdentifiers) -> bytes:
        """``person`` sealed for its own row (its reference is the associated data)."""
        return self._sealer.seal_bytes(_encoder.encode(person), context=self.ref(person.psn_no))

    def open(self, sealed: bytes, ref: str) -> PersonIdentifiers:
        """The person sealed in the row of ``ref``.

        Raises:
            SealedPersonInvalid: another key, another row, or altered.
        """
        try:
            person = _decoder.decode(self._sealer.open_bytes(sealed, context=ref))
        except (SealedSecretInvalid, msgspec.DecodeError) as exc:
            raise SealedPersonInvalid("the sealed person does not open under this key") from exc
        if self.ref(person.psn_no) != ref:
            raise SealedPersonInvalid("the sealed person is not the row's")
        return person

    def seal_bytes(self, data: bytes, context: str) -> bytes:
        """Any ``data`` that may name a person (a stored answer), sealed for ``context``."""
        return self._sealer.seal_bytes(data, context="record:" + context)

    def open_bytes(self, sealed: bytes, context: str) -> bytes:
        """What :meth:`seal_bytes` sealed for ``context``.

        Raises:
            SealedPersonInvalid: another key, another context, or altered.
        """
        try:
            return self._sealer.open_bytes(sealed, context="record:" + context)
        except SealedSecretInvalid as exc:
            raise SealedPersonInvalid("the sealed record does not open under this key") from exc


_installed: PersonKey | None = None


def use_person_key(key: PersonKey | bytes | str) -> PersonKey:
    """Install the person key of this process (again: the newest wins)."""
    global _installed
    _installed = key if isinstance(key, PersonKey) else PersonKey(key)
    return _installed


def person_key() -> PersonKey:
    """The installed person key.

    Raises:
        PersonKeyMissing: none was installed.
    """
    if _installed is None:
        raise PersonKeyMissing()
    return _installed


def person_ref(psn_no: str) -> str:
    """What the database holds for ``psn_no``."""
    return person_key().ref(psn_no)


def seal_person(psn_no: str, name: str) -> bytes:
    """The sealed copy of a person, for ``persons.sealed``."""
    return person_key().seal(PersonIdentifiers(psn_no, name))


def open_person(sealed: bytes, ref: str) -> PersonIdentifiers:
    """The person whose row is ``ref`` and sealed copy ``sealed``."""
    return person_key().open(sealed, ref)


def psn_no_of(row: Row) -> str:
    """The person number of a row that selected ``psn_no`` and ``person_sealed``.

    A query whose rows leave the gateway selects the sealed copy beside the reference,
    ``(SELECT sealed FROM persons WHERE persons.psn_no = t.psn_no) AS person_sealed``:
    an index lookup in the same statement, not another round trip.
    """
    return open_person(row["person_sealed"], row["psn_no"]).psn_no


def opened(row: Row) -> dict[str, Any]:
    """``row`` as a dict with its person's number for ``psn_no`` (and no sealed copy)."""
    fields = {key: row[key] for key in row.keys()}
    fields["psn_no"] = open_person(fields.pop("person_sealed"), row["psn_no"]).psn_no
    return fields


def by_reference(document: Any) -> Any:
    """A partner's JSON ``document`` as we keep it: identifying fields by reference, names gone.

    For what is stored as it came (a province's callback): the rest stays as sent, but a
    province's own words (``err_msg``) are masked as everywhere else (medpay.privacy).
    """
    if isinstance(document, dict):
        return {key: _kept(key, value) for key, value in document.items() if key not in _NAMING}
    if isinstance(document, list):
        return [by_reference(value) for value in document]
    return document


def _kept(key: str, value: Any) -> Any:
    if isinstance(value, str) and value and key in _IDENTIFYING:
        return person_ref(value)
    if isinstance(value, str) and key == "err_msg":
        return masked_text(value)
    return by_reference(value)
