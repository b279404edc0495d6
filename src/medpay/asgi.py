"""The ASGI entry point for production servers (granian, uvicorn): settings from the environment."""

from __future__ import annotations

from litestar import Litestar

from medpay.app import create_app
from medpay.config import load_settings
from medpay.observability.logs import configure_logging

__all__ = ["create_app_from_environment"]


def create_app_from_environment() -> Litestar:
    """Build the gateway from ``DATABASE_URL`` and ``MEDPAY_*``; both must be set in production."""
    settings = load_settings()
    configure_logging(log_format=settings.log_format, level=settings.log_level)
    if not settings.database_url:
        raise RuntimeError("DATABASE_URL must be set for the production entry point")
    if not settings.identity_issuers:
        raise RuntimeError("MEDPAY_IDENTITY_ISSUERS must name the trusted identity issuers")
    return create_app(settings)
