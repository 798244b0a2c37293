"""The Jinja templates of task prompts and judge rubrics: one environment, checked when the file
is read, rendered strictly (a field the template uses and the data lacks is an error, never an
empty string). Filter ``sentences``: the sentences of a text (NLTK punkt, offline)."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import jinja2

from evalkit.errors import ConfigError
from evalkit.nltk_data import sentences

_ENV = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=False)
_ENV.filters["sentences"] = sentences


def check_template(where: str, template: Any, field: str = "template") -> str:
    """A non-empty template that parses; ``where`` and ``field`` name it in the error."""
    if not isinstance(template, str) or not template.strip():
        raise ConfigError(f"{where}: {field} must be a non-empty string")
    try:
        _ENV.parse(template)
    except jinja2.TemplateSyntaxError as exc:
        raise ConfigError(f"{where}: {field} line {exc.lineno}: {exc.message}") from None
    return template


@functools.lru_cache(maxsize=256)
def _compiled(template: str) -> jinja2.Template:
    return _ENV.from_string(template)


def render(template: str, fields: Mapping[str, Any], missing: str) -> str:
    """The template filled in and stripped; a field it uses that ``fields`` lacks raises
    ConfigError("<missing>: <which field>")."""
    try:
        return _compiled(template).render(**fields).strip()
    except jinja2.UndefinedError as exc:
        raise ConfigError(f"{missing}: {exc.message}") from None
