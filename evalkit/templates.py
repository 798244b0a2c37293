"""The Jinja templates of task prompts and judge rubrics: one sandboxed environment, checked when
the file is read, rendered strictly (a field the template uses and the data lacks is an error,
never an empty string). Filter ``sentences``: the sentences of a text (NLTK punkt, offline).

Templates come from task files, and a --task-dir file is anyone's: they are rendered in Jinja's
``ImmutableSandboxedEnvironment``, which refuses attributes that reach Python's internals
(``__class__``, ``__globals__``, ``__subclasses__``, ...) and methods that change a value. The
environment has no loader and a template may not include, import or extend another: it sees only
the document's fields. Every failure while rendering (an unsafe attribute, ``{{ 1/0 }}``,
``{{ title + 1 }}``) is one ConfigError naming the template's owner.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import jinja2
from jinja2 import nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment

from evalkit.errors import ConfigError
from evalkit.nltk_data import sentences

_ENV = ImmutableSandboxedEnvironment(undefined=jinja2.StrictUndefined, keep_trailing_newline=False, autoescape=False)


_ENV.filters["sentences"] = sentences
_ENV.globals.clear()  # no range, dict, lipsum, cycler, joiner, namespace: a template sees its fields only

# Template tags that read other templates: the environment has no loader, and a task's prompt
# stands alone.
_FORBIDDEN = {nodes.Include: "include", nodes.Import: "import", nodes.FromImport: "import", nodes.Extends: "extends"}


def check_template(where: str, template: Any, field: str = "template") -> str:
    """A non-empty template that parses and reads no other template; ``where`` and ``field``
    name it in the error."""
    if not isinstance(template, str) or not template.strip():
        raise ConfigError(f"{where}: {field} must be a non-empty string")
    try:
        tree = _ENV.parse(template)
    except jinja2.TemplateSyntaxError as exc:
        raise ConfigError(f"{where}: {field} line {exc.lineno}: {exc.message}") from None
    for node_type, tag in _FORBIDDEN.items():
        node = tree.find(node_type)
        if node is not None:
            raise ConfigError(
                f"{where}: {field} line {node.lineno}: '{{% {tag} %}}' is not allowed (a template sees only its fields)"
            )
    return template


@functools.lru_cache(maxsize=256)
def _compiled(template: str) -> jinja2.Template:
    return _ENV.from_string(template)


def render(template: str, fields: Mapping[str, Any], where: str) -> str:
    """The template filled in and stripped. Any failure is one ConfigError starting with
    ``where`` (say "task NAME: prompt template"): a field it uses that ``fields`` lacks, an
    attribute the sandbox refuses, an error of the expression itself."""
    try:
        return _compiled(template).render(**fields).strip()
    except jinja2.UndefinedError as exc:
        raise ConfigError(f"{where} uses a field the data lacks: {exc.message}") from None
    except jinja2.exceptions.SecurityError as exc:
        raise ConfigError(f"{where} is unsafe and was not rendered: {exc}") from None
    except jinja2.TemplateSyntaxError as exc:
        raise ConfigError(f"{where} line {exc.lineno}: {exc.message}") from None
    except RecursionError:
        raise ConfigError(f"{where} cannot be rendered: it recurses too deeply") from None
    except Exception as exc:  # noqa: BLE001 - anything a user's expression raises: 1/0, title + 1, ...
        raise ConfigError(f"{where} cannot be rendered: {type(exc).__name__}: {exc}") from None
