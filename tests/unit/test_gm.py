"""SM2 / SM3 / SM4: published vectors, a second implementation, and every failure path."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives import serialization as c_serialization
from cryptography.hazmat.primitives.asymmetric import ec as c_ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from gmssl import sm4 as gmssl_sm4
from hypothesis import given
from hypothesis import strategies as st

from medpay.wire import gm

from .gmssl_keys import gmssl_for, key_gmssl_reads

# --- published vectors ----------------------------------------------------------------------
#
# SM2 on the recommended curve with the default id: GM/T 0003.5-2012 = GB/T 32918.5-2016,
# Annex A (digital signature), as also used by OpenSSL's test/sm2_internal_test.c
# ("From Annex A in both GM/T0003.5-2012 and GB/T 32918.5-2016").
STD_D = "3945208F7B2144B13F36E38AC6D39F95889393692860B51A42FB81EF4DF7C5B8"
STD_X = 0x09F9DF311E5421A150DD7D161E4BC5C672179FAD1833FC076BB08FF356F35020
STD_Y = 0xCCEA490CE26775A52DC6EA718CC1AA600AED05FBF35E084A6632F6072DA9AD13
STD_MESSAGE = b"message digest"
STD_K = "59276E27D506861A16680F3AD9C02DCCEF3CC1FA3CDBE4CE6D54B80DEAC1BC21"
STD_ZA = "B2E14C5C79C6DF5B85F4FE7ED8DB7A262B9DA7E07CCB0EA9F4747B8CCDA8A4F3"
STD_E = "F0B43E94BA45ACCAACE692ED534382EB17E6AB5A19CE7B31F4486FDFC0D28640"
STD_R = 0xF5A03B0648D2C4630EEAC513E1BB81A15944DA3827D5B74143AC7EACEEE720B3
STD_S = 0xB1B6AA29DF212FD8763182BC0D421CA1BB9038FD1F7F42D4840B69C485BBC1AA

# A non-default id: GM/T 0003.2-2012 Annex A.2 (also draft-shen-sm2-ecdsa-02 and OpenSSL's
# test), which uses a *test* curve over a 256-bit prime, ID "ALICE123@YAHOO.COM".
TEST_CURVE_A = 0x787968B4FA32C3FD2417842E73BBFEFF2F3C848B6831D7E0EC65228B3937E498
TEST_CURVE_B = 0x63E4C6D3B23B0C849CF84241484BFE48F61D59A5B16BA06E6E12D1DA27C5249A
TEST_CURVE_GX = 0x421DEBD61B62EAB6746434EBC3CC315E32220B3BADD50BDC4C4E6C147FEDD43D
TEST_CURVE_GY = 0x0680512BCBB42C07D47349D2153B70C4E5D7FDFCBFA36EA1A85841B9E46E09A2
ALICE_X = 0x0AE4C7798AA0F119471BEE11825BE46202BB79E2A5844495E97C04FF4DF2548A
ALICE_Y = 0x7C0240F88F1CD4E16352A73C17B7F16F07353E53A176D684A9FE0C6BB798E857
ALICE_ZA = "F4A38489E32B45B6F876E3AC2168CA392362DC8F23459C1D1146FC3DBFB7BC9A"
ALICE_E = "B524F552CD82B8B028476E005C377FB19A87E6FC682D48BB5D42E3D9B9EFFE76"

# SM4: GB/T 32907-2016 Annex A.1 (key and plaintext alike).
SM4_KEY = bytes.fromhex("0123456789abcdeffedcba9876543210")
SM4_CIPHERTEXT = bytes.fromhex("681edf34d206965e86b3e94f536e4246")


@pytest.fixture(scope="module")
def standard_key() -> gm.Sm2PrivateKey:
    return gm.load_private_key_hex(STD_D)


@pytest.fixture(scope="module")
def key() -> gm.Sm2PrivateKey:
    return key_gmssl_reads()


def _raw_hex(signature: bytes) -> str:
    return gm.signature_der_to_raw(signature).hex()


# --- SM3 ------------------------------------------------------------------------------------


def test_sm3_of_abc_is_the_standard_value() -> None:
    # GB/T 32905-2016 Annex A.1
    assert gm.sm3(b"abc").hex() == (
        "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"
    )


def test_sm3_of_the_512_bit_message_is_the_standard_value() -> None:
    # GB/T 32905-2016 Annex A.2: "abcd" repeated 16 times
    assert gm.sm3(b"abcd" * 16).hex() == (
        "debe9ff92275b8a138604889c18e5a4d6fdb70e5387e5765293dcba39c0c5732"
    )


# --- SM2: vectors and the Z value -----------------------------------------------------------


def test_standard_private_key_gives_the_standard_public_key(standard_key) -> None:
    public = standard_key.public_key()
    assert (public.x, public.y) == (STD_X, STD_Y)


def test_za_and_e_of_the_standard_example_with_the_default_id(standard_key) -> None:
    public = standard_key.public_key()
    assert gm.sm2_za(public).hex().upper() == STD_ZA
    assert gm.sm2_digest(public, STD_MESSAGE).hex().upper() == STD_E


def test_za_with_a_non_default_id_matches_the_standard_test_curve_example() -> None:
    za = gm._za(
        b"ALICE123@YAHOO.COM",
        TEST_CURVE_A,
        TEST_CURVE_B,
        TEST_CURVE_GX,
        TEST_CURVE_GY,
        ALICE_X,
        ALICE_Y,
    )
    assert za.hex().upper() == ALICE_ZA
    assert gm.sm3(za + STD_MESSAGE).hex().upper() == ALICE_E


def test_za_depends_on_the_user_id(standard_key) -> None:
    public = standard_key.public_key()
    assert gm.sm2_za(public, b"ALICE123@YAHOO.COM") != gm.sm2_za(public)


def test_the_standard_signature_verifies(standard_key) -> None:
    signature = encode_dss_signature(STD_R, STD_S)
    gm.verify(standard_key.public_key(), signature, STD_MESSAGE)


def test_the_standard_signature_verifies_in_raw_form(standard_key) -> None:
    raw = STD_R.to_bytes(32, "big") + STD_S.to_bytes(32, "big")
    gm.verify(standard_key.public_key(), raw, STD_MESSAGE, encoding="raw")


def test_our_digest_with_the_standard_nonce_gives_the_standard_signature(standard_key) -> None:
    # gmssl's raw sign takes e and k: with our e and the standard's k it must produce
    # the standard's r and s, so our e is the one the standard signs.
    e = gm.sm2_digest(standard_key.public_key(), STD_MESSAGE)
    assert gmssl_for(standard_key).sign(e, STD_K) == f"{STD_R:064x}{STD_S:064x}"


def test_the_library_applies_z_with_the_default_id(key) -> None:
    # Signatures over e computed three ways; only e = SM3(ZA(default id) || M) verifies.
    public = key.public_key()
    other = gmssl_for(key)
    nonce = "1" * 64
    with_default_z = other.sign(gm.sm2_digest(public, b"m"), nonce)
    without_z = other.sign(gm.sm3(b"m"), nonce)
    with_other_id = other.sign(gm.sm2_digest(public, b"m", b"ALICE123@YAHOO.COM"), nonce)
    gm.verify(public, bytes.fromhex(with_default_z), b"m", encoding="raw")
    for signature in (without_z, with_other_id):
        with pytest.raises(gm.GmError):
            gm.verify(public, bytes.fromhex(signature), b"m", encoding="raw")


def test_the_library_signs_over_z_with_the_default_id(key) -> None:
    signature = gm.sign(key, b"m", encoding="raw")
    e = gm.sm2_digest(key.public_key(), b"m")
    assert gmssl_for(key).verify(signature.hex(), e)


# --- SM2: interoperability with gmssl (pure Python, independent) ---------------------------


def test_our_signature_verifies_with_gmssl(key) -> None:
    message = "支付 2207 medfee_sumamt=123.45".encode()
    signature = gm.sign(key, message)
    assert gmssl_for(key).verify_with_sm3(_raw_hex(signature), message)


def test_gmssl_signature_verifies_with_ours(key) -> None:
    message = "支付 2207 medfee_sumamt=123.45".encode()
    raw = bytes.fromhex(gmssl_for(key).sign_with_sm3(message))
    gm.verify(key.public_key(), raw, message, encoding="raw")
    gm.verify(key.public_key(), gm.signature_raw_to_der(raw), message)


def test_gmssl_der_signature_verifies_with_ours(key) -> None:
    der = bytes.fromhex(gmssl_for(key, asn1=True).sign_with_sm3(b"m"))
    gm.verify(key.public_key(), der, b"m")


# --- SM2: round trips and encodings ---------------------------------------------------------


@pytest.mark.parametrize("encoding", ["der", "raw"])
def test_signature_round_trip(key, encoding) -> None:
    signature = gm.sign(key, b"message", encoding=encoding)
    gm.verify(key.public_key(), signature, b"message", encoding=encoding)


def test_raw_signature_is_64_bytes_and_converts_to_der_and_back(key) -> None:
    raw = gm.sign(key, b"message", encoding="raw")
    assert len(raw) == 64
    assert gm.signature_der_to_raw(gm.signature_raw_to_der(raw)) == raw


def test_base64_signature_round_trip(key) -> None:
    signature = gm.sign_base64(key, b"message", encoding="raw")
    assert len(base64.b64decode(signature)) == 64
    gm.verify_base64(key.public_key(), signature, b"message", encoding="raw")


def test_an_unknown_signature_encoding_is_a_programming_error(key) -> None:
    with pytest.raises(ValueError, match="'der' or 'raw'") as raised:
        gm.verify(key.public_key(), gm.sign(key, b"m"), b"m", encoding="DER")  # type: ignore[arg-type]
    assert not isinstance(raised.value, gm.GmError)
    with pytest.raises(ValueError, match="'der' or 'raw'"):
        gm.sign(key, b"m", encoding="asn1")  # type: ignore[arg-type]


def test_signatures_are_randomised(key) -> None:
    assert gm.sign(key, b"m") != gm.sign(key, b"m")


# --- SM2: failures are GmError, never anything else ------------------------------------------


@pytest.mark.parametrize("encoding", ["der", "raw"])
def test_tampered_message_is_refused(key, encoding) -> None:
    signature = gm.sign(key, b"amount=100", encoding=encoding)
    with pytest.raises(gm.GmError, match="does not verify"):
        gm.verify(key.public_key(), signature, b"amount=900", encoding=encoding)


def test_signature_by_another_key_is_refused(key) -> None:
    signature = gm.sign(gm.generate_private_key(), b"m")
    with pytest.raises(gm.GmError, match="does not verify"):
        gm.verify(key.public_key(), signature, b"m")


def test_raw_signature_given_as_der_is_refused(key) -> None:
    with pytest.raises(gm.GmError, match="not DER"):
        gm.verify(key.public_key(), gm.sign(key, b"m", encoding="raw"), b"m")


def test_der_signature_given_as_raw_is_refused(key) -> None:
    with pytest.raises(gm.GmError, match="64 bytes"):
        gm.verify(key.public_key(), gm.sign(key, b"m"), b"m", encoding="raw")


@pytest.mark.parametrize(
    "mangle",
    [
        lambda der: der + b"\x00",  # trailing data
        lambda der: der[:-1],  # truncated
        lambda der: b"\x30\x81" + der[1:],  # non-minimal length
        lambda der: b"",
        lambda der: b"\x30\x00",
        lambda der: b"\x05\x00",  # NULL, not a SEQUENCE
    ],
)
def test_malformed_der_is_refused(key, mangle) -> None:
    with pytest.raises(gm.GmError):
        gm.verify(key.public_key(), mangle(gm.sign(key, b"m")), b"m")


@pytest.mark.parametrize(
    ("r", "s"), [(0, 1), (1, 0), (gm.SM2_N, 1), (1, gm.SM2_N), (STD_R + gm.SM2_N, STD_S)]
)
def test_signature_scalars_out_of_range_are_refused(standard_key, r, s) -> None:
    with pytest.raises(gm.GmError, match="out of range"):
        gm.verify(standard_key.public_key(), encode_dss_signature(r, s), STD_MESSAGE)


@pytest.mark.parametrize("text", ["not base64!", "AAAA====", "A", "ＡＡＡＡ", ""])
def test_malformed_base64_signature_is_refused(key, text) -> None:
    with pytest.raises(gm.GmError):
        gm.verify_base64(key.public_key(), text, b"m")


def test_signature_that_is_not_bytes_is_refused(key) -> None:
    with pytest.raises(gm.GmError):
        gm.verify(key.public_key(), "3045", b"m")  # type: ignore[arg-type]


_PROPERTY_KEY = gm.generate_private_key()


@given(signature=st.binary(max_size=80), message=st.binary(max_size=64))
def test_arbitrary_der_bytes_either_verify_or_raise_gm_error(signature, message) -> None:
    public = _PROPERTY_KEY.public_key()
    try:
        gm.verify(public, signature, message)
    except gm.GmError:
        pass


@given(signature=st.binary(min_size=64, max_size=64) | st.binary(max_size=70))
def test_arbitrary_raw_bytes_either_verify_or_raise_gm_error(signature) -> None:
    try:
        gm.verify(_PROPERTY_KEY.public_key(), signature, b"m", encoding="raw")
    except gm.GmError:
        pass


@given(text=st.text(max_size=120))
def test_arbitrary_base64_text_either_verifies_or_raises_gm_error(text) -> None:
    try:
        gm.verify_base64(_PROPERTY_KEY.public_key(), text, b"m", encoding="raw")
    except gm.GmError:
        pass


# --- keys -----------------------------------------------------------------------------------


def test_pem_round_trip(key) -> None:
    assert "BEGIN PRIVATE KEY" in gm.private_key_pem(key)
    loaded = gm.load_private_key(gm.private_key_pem(key))
    assert gm.private_key_hex(loaded) == gm.private_key_hex(key)
    assert gm.load_public_key(gm.public_key_pem(key)) == key.public_key()


def test_pem_keys_name_the_sm2_curve(key) -> None:
    # id-ecPublicKey (1.2.840.10045.2.1) with the named curve sm2 (1.2.156.10197.1.301),
    # the form GM/T 0010 and other national tools read.
    id_ec_public_key = bytes.fromhex("06072a8648ce3d0201")
    sm2_curve = bytes.fromhex("06082a811ccf5501822d")
    for pem in (gm.public_key_pem(key), gm.private_key_pem(key)):
        der = _der_of_pem(pem)
        assert id_ec_public_key + sm2_curve in der


def test_hex_round_trip(key) -> None:
    assert gm.load_private_key_hex(gm.private_key_hex(key)).public_key() == key.public_key()
    assert gm.load_public_key_hex(gm.public_key_hex(key)) == key.public_key()


def test_hex_public_key_without_the_04_prefix_and_in_upper_case(key) -> None:
    text = gm.public_key_hex(key)[2:].upper()
    assert gm.load_public_key_hex(text) == key.public_key()


def test_hex_private_key_with_javas_leading_zero_byte(standard_key) -> None:
    loaded = gm.load_private_key_hex("00" + STD_D)
    assert loaded.public_key() == standard_key.public_key()


def test_hex_public_key_off_the_curve_is_refused() -> None:
    off = f"04{STD_X:064x}{STD_Y + 1:064x}"
    with pytest.raises(ValueError, match="not on the SM2 curve"):
        gm.load_public_key_hex(off)


def test_hex_public_key_with_a_coordinate_beyond_p_is_refused() -> None:
    with pytest.raises(ValueError, match="not on the SM2 curve"):
        gm.load_public_key_hex(f"04{gm.SM2_P + 1:064x}{STD_Y:064x}")


@pytest.mark.parametrize(
    "text", ["", "04", "zz" * 65, "05" + "11" * 64, "04" + "11" * 63, "02" + "11" * 32]
)
def test_hex_public_key_of_the_wrong_shape_is_refused(text) -> None:
    with pytest.raises(ValueError):
        gm.load_public_key_hex(text)


@pytest.mark.parametrize(
    "d", [0, gm.SM2_N - 1, gm.SM2_N, 2**256 - 1], ids=["zero", "n-1", "n", "max"]
)
def test_hex_private_key_out_of_range_is_refused(d) -> None:
    with pytest.raises(ValueError, match="out of range"):
        gm.load_private_key_hex(f"{d:064x}")


@pytest.mark.parametrize("text", ["", "11" * 31, "11" * 33, "0g" * 32])
def test_hex_private_key_of_the_wrong_shape_is_refused(text) -> None:
    with pytest.raises(ValueError):
        gm.load_private_key_hex(text)


def test_p256_pem_keys_are_refused() -> None:
    p256 = c_ec.generate_private_key(c_ec.SECP256R1())
    private_pem = p256.private_bytes(
        c_serialization.Encoding.PEM,
        c_serialization.PrivateFormat.PKCS8,
        c_serialization.NoEncryption(),
    )
    public_pem = p256.public_key().public_bytes(
        c_serialization.Encoding.PEM, c_serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with pytest.raises(ValueError, match="not an SM2 private key"):
        gm.load_private_key(private_pem)
    with pytest.raises(ValueError, match="not an SM2 public key"):
        gm.load_public_key(public_pem)


@pytest.mark.parametrize(
    "pem", ["", "-----BEGIN PUBLIC KEY-----\nxx\n-----END PUBLIC KEY-----\n", "not pem"]
)
def test_garbage_pem_is_refused(pem) -> None:
    with pytest.raises(ValueError):
        gm.load_public_key(pem)
    with pytest.raises(ValueError):
        gm.load_private_key(pem)


def _der_of_pem(pem: str) -> bytes:
    body = "".join(line for line in pem.splitlines() if not line.startswith("-----"))
    return base64.b64decode(body)


def _pem_of_der(der: bytes, label: str) -> str:
    body = base64.encodebytes(der).decode()
    return f"-----BEGIN {label}-----\n{body}-----END {label}-----\n"


def test_pem_public_key_off_the_curve_is_refused(key) -> None:
    der = _der_of_pem(gm.public_key_pem(key))
    off = der[:-1] + bytes([der[-1] ^ 1])  # the last byte of y
    with pytest.raises(ValueError):
        gm.load_public_key(_pem_of_der(off, "PUBLIC KEY"))


def test_pem_private_key_whose_public_key_is_not_its_own_is_refused(key) -> None:
    der = _der_of_pem(gm.private_key_pem(key))
    other = bytes.fromhex(gm.public_key_hex(gm.generate_private_key()))
    assert der.endswith(bytes.fromhex(gm.public_key_hex(key)))
    swapped = der[: -len(other)] + other
    with pytest.raises(ValueError, match="not d·G"):
        gm.load_private_key(_pem_of_der(swapped, "PRIVATE KEY"))


def test_private_key_repr_shows_no_secret(standard_key) -> None:
    assert STD_D.lower() not in repr(standard_key).lower()


# --- SM4 ------------------------------------------------------------------------------------


def test_sm4_first_block_is_the_standard_ciphertext() -> None:
    ciphertext = gm.sm4_ecb_encrypt(SM4_KEY, SM4_KEY)
    assert ciphertext[:16] == SM4_CIPHERTEXT
    assert len(ciphertext) == 32  # a whole block of PKCS#7 padding follows


@pytest.mark.parametrize("size", [0, 1, 15, 16, 17, 1024])
def test_sm4_round_trip(size) -> None:
    plaintext = bytes(i % 256 for i in range(size))
    assert gm.sm4_ecb_decrypt(SM4_KEY, gm.sm4_ecb_encrypt(SM4_KEY, plaintext)) == plaintext


@pytest.mark.parametrize("size", [0, 5, 16, 33, 1024])
def test_sm4_ciphertext_agrees_with_gmssl(size) -> None:
    plaintext = bytes(i % 251 for i in range(size))
    other = gmssl_sm4.CryptSM4(padding_mode=gmssl_sm4.PKCS7)
    other.set_key(SM4_KEY, gmssl_sm4.SM4_ENCRYPT)
    ours = gm.sm4_ecb_encrypt(SM4_KEY, plaintext)
    assert ours == other.crypt_ecb(plaintext)
    other.set_key(SM4_KEY, gmssl_sm4.SM4_DECRYPT)
    assert other.crypt_ecb(ours) == plaintext


def _encrypt_without_padding(key: bytes, blocks: bytes) -> bytes:
    encryptor = Cipher(algorithms.SM4(key), modes.ECB()).encryptor()
    return encryptor.update(blocks) + encryptor.finalize()


@pytest.mark.parametrize(
    "last_block",
    [
        b"A" * 15 + b"\x00",  # pad byte 0
        b"A" * 15 + b"\x11",  # pad byte 17 > block
        b"A" * 14 + b"\x01\x02",  # pad byte 2, but the byte before is not 2
        b"A" * 16,  # no padding at all
    ],
)
def test_sm4_bad_padding_is_refused(last_block) -> None:
    ciphertext = _encrypt_without_padding(SM4_KEY, b"B" * 16 + last_block)
    with pytest.raises(gm.GmError, match="padding"):
        gm.sm4_ecb_decrypt(SM4_KEY, ciphertext)


@pytest.mark.parametrize("cut", [1, 15, 16, 31])
def test_sm4_truncated_ciphertext_is_refused(cut) -> None:
    ciphertext = gm.sm4_ecb_encrypt(SM4_KEY, b"x" * 40)
    with pytest.raises(gm.GmError):
        gm.sm4_ecb_decrypt(SM4_KEY, ciphertext[:-cut])


def test_sm4_empty_ciphertext_is_refused() -> None:
    with pytest.raises(gm.GmError, match="multiple of 16"):
        gm.sm4_ecb_decrypt(SM4_KEY, b"")


def test_sm4_wrong_key_is_refused() -> None:
    ciphertext = gm.sm4_ecb_encrypt(SM4_KEY, b'{"payOrdId":"ORD1"}')
    with pytest.raises(gm.GmError, match="padding"):
        gm.sm4_ecb_decrypt(bytes(16), ciphertext)


@pytest.mark.parametrize("bad_key", [b"", b"short", bytes(17), "0123456789abcdef"])
def test_sm4_key_of_the_wrong_length_is_a_configuration_error(bad_key) -> None:
    with pytest.raises(ValueError, match="16 bytes") as raised:
        gm.sm4_ecb_encrypt(bad_key, b"x")
    assert not isinstance(raised.value, gm.GmError)


@given(ciphertext=st.binary(max_size=100))
def test_arbitrary_bytes_either_decrypt_or_raise_gm_error(ciphertext) -> None:
    try:
        gm.sm4_ecb_decrypt(SM4_KEY, ciphertext)
    except gm.GmError:
        pass
