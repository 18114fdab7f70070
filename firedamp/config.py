"""Typed TOML configs: dataclasses whose fields carry their allowed range, values or pattern, built from a
TOML table with errors that name the file, the key, the value and what is allowed. Unknown keys are an
error (a typo must not pass silently). control/config.py builds control.toml with it.

Field metadata: `required` (bool), `range` (lo, hi), `choices` (values), `pattern` (compiled regex) with
`allowed` (its words for the error). Secret keys (`password`) are never shown in errors.
"""

from __future__ import annotations

import dataclasses
import tomllib
import typing
from pathlib import Path
from typing import Any

from firedamp.errors import ConfigError

SECRET_KEYS = {"password"}
_ITEMS = {str: "strings in quotes", int: "integers", float: "numbers", bool: "true or false"}


def range_(lo: float, hi: float) -> dict[str, Any]:
    return {"range": (lo, hi)}


def choices(*values: str) -> dict[str, Any]:
    return {"choices": values}


def flatten(obj: Any, prefix: str = "") -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        name = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(value):
            out += flatten(value, name + ".")
        elif isinstance(value, list) and value and dataclasses.is_dataclass(value[0]):
            for i, item in enumerate(value):
                out += flatten(item, f"{name}[{i}].")
        else:
            out.append((name, value))
    return out


def build(cls: type, data: Any, section: str, source: str) -> Any:
    """A dataclass from a TOML table: every key known, every value of its type and in its range."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: [{section}] must be a table, not {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields_ = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields_))
    if unknown:
        where = f"[{section}] {unknown[0]}" if section else unknown[0]
        raise ConfigError(f"{source}: unknown key {where} (allowed: {', '.join(fields_)})")
    values: dict[str, Any] = {}
    for name, f in fields_.items():
        where = f"[{section}] {name}" if section else name
        if name not in data:
            if f.metadata.get("required"):
                raise ConfigError(f"{source}: {where} is required")
            continue
        hint, value = hints[name], data[name]
        if dataclasses.is_dataclass(hint):
            values[name] = build(hint, value, name, source)
        elif typing.get_origin(hint) is list:
            (item,) = typing.get_args(hint)
            if not isinstance(value, list):
                if dataclasses.is_dataclass(item):
                    raise ConfigError(f"{source}: {where} must be a list of [[{section + '.' if section else ''}"
                                      f"{name}]] tables")
                shown = "***" if name in SECRET_KEYS else repr(value)
                raise ConfigError(f"{source}: {where} must be a list, not {shown}; allowed: a list of "
                                  f"{_ITEMS.get(item, item.__name__)}")
            if dataclasses.is_dataclass(item):
                values[name] = [build(item, v, f"{name}[{i}]", source) for i, v in enumerate(value)]
            else:
                values[name] = [check(item, v, f.metadata, f"{where}[{i}]", source) for i, v in enumerate(value)]
        else:
            values[name] = check(hint, value, f.metadata, where, source)
    return cls(**values)


def check(kind: type, value: Any, meta: Any, where: str, source: str) -> Any:
    shown = "***" if where.rsplit(" ", 1)[-1] in SECRET_KEYS else repr(value)

    def bad(allowed: str) -> ConfigError:
        return ConfigError(f"{source}: {where} = {shown} is not allowed; allowed: {allowed}")

    span = " in {}..{}".format(*meta["range"]) if "range" in meta else ""
    if kind is bool and not isinstance(value, bool):
        raise bad("true or false")
    if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise bad("an integer" + span)
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad("a number" + span)
        value = float(value)
    if kind is str and not isinstance(value, str):
        raise bad("a string in quotes")
    if "range" in meta and not meta["range"][0] <= value <= meta["range"][1]:
        raise bad("{}..{}".format(*meta["range"]))
    if "choices" in meta and value not in meta["choices"]:
        raise bad(", ".join(repr(c) for c in meta["choices"]))
    if "pattern" in meta and not meta["pattern"].match(value):
        raise bad(meta["allowed"])
    return value


def read_toml(path: str | Path) -> dict[str, Any]:
    """A TOML file as a dict; ConfigError names the file and what is wrong with it."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc.strerror}") from exc
    try:
        return tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    except RecursionError:  # tomllib recurses into nested arrays and inline tables
        raise ConfigError(f"{path}: not valid TOML: arrays or tables nested too deep") from None
