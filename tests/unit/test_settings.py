"""Every setting comes from its own environment variable, converted once, in one place."""

from __future__ import annotations

import json

import msgspec
import pytest

from medpay.config import IdentityIssuer, Settings, environment_variable, load_settings

ISSUER = IdentityIssuer(issuer="idp", public_key_pem="-----BEGIN PUBLIC KEY-----\nx\n")


def _a_value_unlike_the_default(field: msgspec.structs.FieldInfo) -> tuple[str, object]:
    """An environment string for ``field`` and the value it must become."""
    default = field.default
    if field.name == "identity_issuers":
        return json.dumps([msgspec.to_builtins(ISSUER)]), (ISSUER,)
    if field.name == "reconciliation_at":
        return "23:45", "23:45"
    if field.name == "console_cookie_secure":  # unset means "when the request is HTTPS"
        return "true", True
    if field.name == "trusted_proxies":
        return '["10.0.0.0/8", "fd00::/8"]', ("10.0.0.0/8", "fd00::/8")
    if isinstance(default, bool):
        return ("false" if default else "true"), not default
    if isinstance(default, int):
        return str(default + 7), default + 7
    if isinstance(default, float):
        return str(default + 0.5), default + 0.5
    return f"set-{field.name}", f"set-{field.name}"


@pytest.mark.parametrize("field", msgspec.structs.fields(Settings), ids=lambda f: f.name)
def test_every_setting_can_be_set_from_the_environment(field):
    raw, expected = _a_value_unlike_the_default(field)

    settings = load_settings({environment_variable(field.name): raw})

    assert getattr(settings, field.name) == expected
    assert expected != field.default


def test_an_empty_variable_leaves_the_default():
    assert load_settings({"MEDPAY_PORT": ""}).port == Settings().port


def test_a_variable_that_does_not_convert_names_itself():
    with pytest.raises(ValueError, match="port"):
        load_settings({"MEDPAY_PORT": "eighty"})
    with pytest.raises(ValueError, match="MEDPAY_IDENTITY_ISSUERS"):
        load_settings({"MEDPAY_IDENTITY_ISSUERS": "[not json"})


def test_a_time_of_day_that_is_not_one_is_refused():
    with pytest.raises(ValueError, match="reconciliation_at"):
        load_settings({"MEDPAY_RECONCILIATION_AT": "3 am"})


def test_overrides_win_over_the_environment():
    assert load_settings({"MEDPAY_PORT": "9000"}, port=9100).port == 9100


@pytest.mark.parametrize(
    "field",
    ["console_session_idle_seconds", "console_login_attempts_max", "console_password_time_cost"],
)
def test_a_console_limit_below_one_is_refused(field):
    with pytest.raises(ValueError, match=field):
        load_settings({environment_variable(field): "0"})


def test_argon2_needs_eight_kib_per_lane():
    with pytest.raises(ValueError, match="console_password_memory_kib"):
        load_settings({"MEDPAY_CONSOLE_PASSWORD_MEMORY_KIB": "16"})
