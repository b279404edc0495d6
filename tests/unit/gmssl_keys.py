"""SM2 keys and checkers for interop tests against gmssl (pure Python, independent)."""

from __future__ import annotations

from gmssl import sm2 as gmssl_sm2

from medpay.wire import gm


def key_gmssl_reads() -> gm.Sm2PrivateKey:
    """A fresh key whose x does not begin with the hex digits "04".

    gmssl takes such an x || y for an uncompressed point and lstrips every leading 0 and 4,
    so one fresh key in 256 would fail an interop test for gmssl's sake, not ours.
    """
    while True:
        key = gm.generate_private_key()
        if not gm.public_key_hex(key)[2:].startswith("04"):
            return key


def gmssl_for(private: gm.Sm2PrivateKey, *, asn1: bool = False) -> gmssl_sm2.CryptSM2:
    """gmssl's signer and checker for ``private``, given x || y without the "04" prefix."""
    return gmssl_sm2.CryptSM2(
        private_key=gm.private_key_hex(private),
        public_key=gm.public_key_hex(private)[2:],
        asn1=asn1,
    )
