"""Loading YAML configuration files into pydantic models, with line numbers in errors.

Every Vigie service reads its configuration through :func:`load_yaml_model`, so a
mistake in a file is always reported the same way, one line per problem::

    /etc/vigie/cameras.yaml:12: cameras[1].fps: Input should be less than or equal to 30
    /etc/vigie/cameras.yaml:7: cameras[0].fsp: unknown key 'fsp'

The line is found by composing the YAML node tree (which keeps each node's
``start_mark``) and walking it along the pydantic error location.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import pydantic
import yaml

from vigie.core import errors

__all__ = [
    "ConfigError", "ConfigProblem", "format_loc", "load_yaml_model", "locate_problems", "read_config_text",
    "validate_yaml_text", "validation_issues",
]

M = TypeVar("M", bound=pydantic.BaseModel)


class ConfigProblem(tuple):
    """One problem in a configuration file: ``(line, location, message)``.

    ``line`` is 1-based (0 when unknown), ``location`` is a dotted path such as
    ``cameras[1].fps`` ('' for the whole document).
    """

    __slots__ = ()

    def __new__(cls, line: int, location: str, message: str) -> "ConfigProblem":
        return super().__new__(cls, (line, location, message))

    line = property(lambda self: self[0])
    location = property(lambda self: self[1])
    message = property(lambda self: self[2])


class ConfigError(errors.ConfigError):
    """A configuration file cannot be read or does not validate.

    ``str(err)`` lists every problem as ``path:line: location: message``;
    ``err.problems`` holds them as :class:`ConfigProblem` tuples and ``err.path``
    the file.
    """

    def __init__(self, path: str | os.PathLike[str], problems: Sequence[ConfigProblem]):
        self.path = str(path)
        self.problems = list(problems)
        lines = []
        for p in self.problems:
            where = f"{self.path}:{p.line}" if p.line else self.path
            lines.append(f"{where}: {p.location}: {p.message}" if p.location else f"{where}: {p.message}")
        super().__init__("\n".join(lines))


def format_loc(loc: Sequence[Any]) -> str:
    """A pydantic-style location as shown in errors: ``("cameras", 1, "fps")`` -> ``cameras[1].fps``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _locate(root: yaml.Node | None, loc: Sequence[Any]) -> tuple[int, list[Any], bool]:
    """Walk ``root`` along a pydantic ``loc``.

    Returns ``(line, display_loc, complete)``: the 1-based line of the deepest node
    reached (or of the key node when the last element is a mapping key that is
    present), the location parts worth displaying (pydantic union/type tags that
    do not match the document shape are dropped) and whether the whole loc resolved.
    """
    node = root
    line = node.start_mark.line + 1 if node is not None else 0
    shown: list[Any] = []
    for i, part in enumerate(loc):
        if isinstance(node, yaml.MappingNode) and isinstance(part, str):
            for key_node, value_node in node.value:
                if isinstance(key_node, yaml.ScalarNode) and key_node.value == part:
                    shown.append(part)
                    # the key's own line is the useful one for the last element
                    line = key_node.start_mark.line + 1
                    node = value_node
                    if i < len(loc) - 1:
                        line = value_node.start_mark.line + 1
                    break
            else:
                shown.extend(loc[i:])  # missing key: report it at its parent mapping
                return line, shown, False
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if 0 <= part < len(node.value):
                node = node.value[part]
                line = node.start_mark.line + 1
                shown.append(part)
            else:
                shown.extend(loc[i:])
                return line, shown, False
        elif isinstance(part, str) and not isinstance(node, yaml.MappingNode):
            continue  # a pydantic type tag (e.g. 'list[...]' in a union): not in the document
        else:
            shown.extend(loc[i:])
            return line, shown, False
    return line, shown, True


def validation_issues(exc: pydantic.ValidationError) -> list[tuple[tuple[Any, ...], str]]:
    """``(loc, message)`` for each error of ``exc``, worded as configuration errors show them.

    ``loc`` is pydantic's location tuple; an unknown key reads ``unknown key 'x' (not
    allowed here)`` and a validator's ``ValueError`` its own text.
    """
    issues = []
    for err in exc.errors(include_url=False):
        loc = tuple(err.get("loc", ()))
        if err.get("type") == "extra_forbidden" and loc:
            message = f"unknown key {loc[-1]!r} (not allowed here)"
        else:
            message = err.get("msg", "invalid value")
            if err.get("type") == "value_error" and message.startswith("Value error, "):
                message = message[len("Value error, "):]
            if err.get("type") == "string_type" and isinstance(err.get("input"), (bool, int, float)):
                # YAML 1.1 reads off/on/yes/no as booleans and 010 as a number
                message += (f": YAML read it as {type(err['input']).__name__} {err['input']!r}; "
                            "put the value in quotes")
        issues.append((loc, message))
    return issues


def _located(root: yaml.Node | None, issues: Iterable[tuple[Sequence[Any], str]]) -> list[ConfigProblem]:
    problems = []
    for loc, message in issues:
        line, shown, _ = _locate(root, list(loc))
        problems.append(ConfigProblem(line, format_loc(shown), message))
    problems.sort(key=lambda p: (p.line, p.location))
    return problems


def locate_problems(text: str, issues: Iterable[tuple[Sequence[Any], str]]) -> list[ConfigProblem]:
    """Problems found outside pydantic's validation of a document, with their lines.

    ``text``: the YAML document; ``issues``: ``(loc, message)`` pairs, ``loc`` a path
    into the document such as ``("cameras", 1, "analytics", "fire", "zones", 0)``.
    Returns :class:`ConfigProblem` tuples sorted by line, each at the line of the
    deepest node of ``loc`` present in ``text`` (0 when ``text`` is not valid YAML).
    """
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        root = None
    if root is None:
        return [ConfigProblem(0, format_loc(loc), message) for loc, message in issues]
    return _located(root, issues)


def validate_yaml_text(text: str, model: type[M], *, path: str | os.PathLike[str] = "<string>") -> M:
    """Parse YAML ``text`` and validate it as ``model``.

    An empty document validates as ``{}``. Raises :class:`ConfigError` for YAML
    syntax errors and validation errors (each with its line number).
    """
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 0
        raise ConfigError(path, [ConfigProblem(line, "", f"YAML syntax error: {exc.problem or exc}")]) from None
    except yaml.YAMLError as exc:
        raise ConfigError(path, [ConfigProblem(0, "", f"YAML error: {exc}")]) from None
    if data is None:
        data = {}
    try:
        return model.model_validate(data)
    except pydantic.ValidationError as exc:
        raise ConfigError(path, _located(root, validation_issues(exc))) from None


def load_yaml_model(path: str | os.PathLike[str], model: type[M]) -> M:
    """Read the YAML file at ``path`` and validate it as the pydantic ``model``.

    Blocking (reads the file): call it at start-up or through ``asyncio.to_thread``.
    Raises :class:`ConfigError` when the file cannot be read, is not valid YAML or
    does not validate; the message names ``path:line: location: problem`` for each
    problem, e.g. ``cameras.yaml:12: cameras[1].fps: Input should be ...``.
    """
    return validate_yaml_text(read_config_text(path), model, path=path)


def read_config_text(path: str | os.PathLike[str]) -> str:
    """The UTF-8 text of the configuration file at ``path`` (blocking).

    Raises :class:`ConfigError` (``path: cannot read: ...``) when it cannot be read.
    """
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(path, [ConfigProblem(0, "", f"cannot read: {exc}")]) from None
