"""Every request schema is decoded strictly: the types it declares, nothing converted.

Issue 8, item 5: Litestar's own conversion took "10000" for an integer and "true" or 1
for a boolean. Each body type of every route is checked here, field by field.
"""

from __future__ import annotations

import typing
from collections.abc import Iterator

import msgspec
import pytest
from litestar.handlers import HTTPRouteHandler

from medpay.app import create_app
from medpay.config import Settings
from medpay.http.strict import _decoder, body_type

APP = create_app(Settings(database_url="postgresql://unused/unused"))


def _body_types() -> dict[str, object]:
    types: dict[str, object] = {}
    for route in APP.routes:
        for handler in getattr(route, "route_handlers", []):
            if isinstance(handler, HTTPRouteHandler) and body_type(handler) is not None:
                types[handler.operation_id or handler.handler_name] = body_type(handler)
    return types


BODY_TYPES = _body_types()


def _scalar_fields(struct: type[msgspec.Struct], path: str = "") -> Iterator[tuple[str, object]]:
    """(JSON path, declared type) of every integer and boolean field, nested ones too."""
    for field in msgspec.structs.fields(struct):
        annotation = field.type
        name = f"{path}{field.encode_name}"
        kinds = {_kind(arg) for arg in (annotation, *typing.get_args(annotation))}
        if bool in kinds:
            yield name, bool
        elif int in kinds:
            yield name, int
        for arg in (annotation, *typing.get_args(annotation)):
            inner = typing.get_args(arg)[0] if typing.get_origin(arg) is list else arg
            if isinstance(inner, type) and issubclass(inner, msgspec.Struct):
                yield from _scalar_fields(inner, f"{name}[].")


def _kind(annotation: object) -> object:
    """int for an integer or a Literal of integers, bool for a boolean, else the type."""
    while typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    if typing.get_origin(annotation) is typing.Literal:
        values = typing.get_args(annotation)
        return int if all(type(v) is int for v in values) else annotation
    return annotation


def test_every_route_with_a_body_is_checked():
    assert {"createPayment", "issuePrescription", "registerInstitution", "createFiling"} <= set(
        BODY_TYPES
    )


CASES = [
    (operation, field, kind)
    for operation, struct in BODY_TYPES.items()
    for field, kind in _scalar_fields(struct)  # type: ignore[arg-type]
]


@pytest.mark.parametrize(
    ("operation", "field", "kind"), CASES, ids=[f"{o}:{f}" for o, f, _ in CASES]
)
def test_a_scalar_of_the_wrong_json_type_is_refused(operation, field, kind):
    wrong = ['"1"', "1.0"] if kind is int else ['"true"', "1"]
    for value in wrong:
        body = _nest(field, value)
        with pytest.raises(msgspec.ValidationError, match="Expected"):
            _decoder(BODY_TYPES[operation]).decode(body)


def _nest(path: str, value: str) -> bytes:
    """``{"a": [{"b": value}]}`` for the path ``a[].b``."""
    *outer, last = path.split("[].")
    text = f'{{"{last}": {value}}}'
    for name in reversed(outer):
        text = f'{{"{name}": [{text}]}}'
    return text.encode()
