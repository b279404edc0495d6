"""Cost of the national algorithms per operation, beside what medpay signs with today.

SM2-with-SM3 sign and verify (tongsuopy) next to Ed25519 and ECDSA P-256 with SHA-256
(cryptography), over a 256-byte message (about one canonical string); SM4-ECB
encrypt and decrypt of a 1 KiB body; and the mobile-payment envelope (sign, encrypt;
decrypt, verify) around 1 KiB of business data. Each row times single calls and
reports the median; every row stops after ``--iterations`` calls or ``--time-limit``
seconds, whichever comes first. Run it on an idle machine and compare rows within
one run: absolute figures drift between machines.

    .venv/bin/python scripts/bench_sm2.py [--iterations 2000] [--time-limit 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from decimal import Decimal

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from medpay.wire import gm, mobile

MESSAGE = os.urandom(256)
BODY = os.urandom(1024)
APP_ID = "3F2A9C7B1E4D8F6A0B5C2D7E9F1A3B4C"
APP_SECRET = "Q7W2E9R4T6Y1U8I3O5P0A2S4D6F8G1H3"


def measure(
    operation: Callable[[], object], iterations: int, time_limit: float
) -> tuple[float, int]:
    """Median microseconds per call of ``operation``, and how many calls were timed."""
    operation()  # warm up caches and lazy initialisation
    samples: list[int] = []
    deadline = time.monotonic() + time_limit
    while len(samples) < iterations and time.monotonic() < deadline:
        started = time.perf_counter_ns()
        operation()
        samples.append(time.perf_counter_ns() - started)
    return statistics.median(samples) / 1000, len(samples)


def cases() -> list[tuple[str, Callable[[], object]]]:
    sm2 = gm.generate_private_key()
    sm2_public = sm2.public_key()
    sm2_signature = gm.sign(sm2, MESSAGE)
    ed = ed25519.Ed25519PrivateKey.generate()
    ed_public = ed.public_key()
    ed_signature = ed.sign(MESSAGE)
    p256 = ec.generate_private_key(ec.SECP256R1())
    p256_public = p256.public_key()
    p256_signature = p256.sign(MESSAGE, ec.ECDSA(hashes.SHA256()))
    sm4_key = os.urandom(gm.SM4_KEY_LENGTH)
    sm4_ciphertext = gm.sm4_ecb_encrypt(sm4_key, BODY)
    data = {f"field{i:02d}": f"value {i:04d} ----------" for i in range(30)}
    data["feeSumamt"] = Decimal("123.45")
    envelope = mobile.seal(data, app_id=APP_ID, app_secret=APP_SECRET, private_key=sm2)

    return [
        ("SM2 sign (SM3, Z)", lambda: gm.sign(sm2, MESSAGE)),
        ("SM2 verify", lambda: gm.verify(sm2_public, sm2_signature, MESSAGE)),
        ("Ed25519 sign", lambda: ed.sign(MESSAGE)),
        ("Ed25519 verify", lambda: ed_public.verify(ed_signature, MESSAGE)),
        ("ECDSA P-256 sign", lambda: p256.sign(MESSAGE, ec.ECDSA(hashes.SHA256()))),
        (
            "ECDSA P-256 verify",
            lambda: p256_public.verify(p256_signature, MESSAGE, ec.ECDSA(hashes.SHA256())),
        ),
        ("SM4-ECB encrypt 1 KiB", lambda: gm.sm4_ecb_encrypt(sm4_key, BODY)),
        ("SM4-ECB decrypt 1 KiB", lambda: gm.sm4_ecb_decrypt(sm4_key, sm4_ciphertext)),
        (
            "envelope seal ~1 KiB",
            lambda: mobile.seal(data, app_id=APP_ID, app_secret=APP_SECRET, private_key=sm2),
        ),
        (
            "envelope open ~1 KiB",
            lambda: mobile.open_envelope(envelope, app_secret=APP_SECRET, public_key=sm2_public),
        ),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--iterations", type=int, default=2000, help="calls per row at most")
    parser.add_argument("--time-limit", type=float, default=5.0, help="seconds per row at most")
    args = parser.parse_args()
    print(f"{'operation':<24} {'median µs':>10} {'ops/s':>9} {'n':>6}")
    for name, operation in cases():
        median_us, count = measure(operation, args.iterations, args.time_limit)
        print(f"{name:<24} {median_us:>10.1f} {1e6 / median_us:>9.0f} {count:>6}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
