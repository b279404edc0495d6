"""The console's templates: Jinja, escaping everything, failing on a name that is not there."""

from __future__ import annotations

from jinja2 import Environment, PackageLoader, StrictUndefined
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.template.config import TemplateConfig

from medpay.console.views import (
    HEAT_LEVELS,
    INFNO_NAMES,
    SETTLEMENT_FIGURES,
    china_time,
    masked_person_number,
    masked_text,
    province_name,
    yuan,
)

__all__ = ["environment", "template_config"]


def environment() -> Environment:
    """Templates of ``medpay/console/templates``, with the console's filters."""
    env = Environment(
        loader=PackageLoader("medpay.console", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        yuan=yuan,
        masked=masked_person_number,
        masked_text=masked_text,
        china_time=china_time,
        province=province_name,
    )
    env.globals.update(
        heat_levels=HEAT_LEVELS, infno_names=INFNO_NAMES, settlement_figures=SETTLEMENT_FIGURES
    )
    return env


def template_config() -> TemplateConfig[JinjaTemplateEngine]:
    """The application's template configuration (only the console renders templates)."""
    return TemplateConfig(instance=JinjaTemplateEngine.from_environment(environment()))
