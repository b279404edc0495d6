-- Patient apps may sign with SM2 (SM3withSM2, the national algorithm) as well as
-- Ed25519 and ECDSA P-256: the same canonical request string, another key type.
ALTER TABLE app_keys DROP CONSTRAINT app_keys_algorithm_check;
ALTER TABLE app_keys ADD CONSTRAINT app_keys_algorithm_check
    CHECK (algorithm IN ('ed25519', 'ecdsa-p256', 'sm2'));
