"""Declarations of parameters: each key's type, bounds or choices, stated once beside its field.

A params dataclass declares every field with ``param(kind)``; ``parse_section`` reads any
such dataclass from a mapping of the YAML file, so there is one parser for every section,
and ``option_type`` turns the same declaration into an ``argparse`` type, so a CLI option
is checked exactly like the param it mirrors. Every refusal is a ``ParamsError`` whose
message starts with the dotted key (or the option) at fault; a key nobody declared (a typo)
is refused with the closest declared name.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from aerialseg.core.errors import ParamsError

# a scene id names files in every stage folder: letters, digits, _ . - (no separators, spaces or a
# leading dot or dash), at most 100 characters, not ending in a dot (Windows drops it)
_SCENE_ID = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9_.-]{0,98}[A-Za-z0-9_-])?$")
SCENE_ID_RULE = "letters, digits, _ . - (starting with a letter or digit, not ending in a dot), at most 100"
QUOTE_HINT = 'write "2_10", not 2_10 (YAML reads 2_10 as the number 210)'
T = TypeVar("T")


def shown(value: object, limit: int = 60) -> str:
    """A value as it should appear in a one-line message: repr, shortened."""
    text = repr(value).replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 3] + "..."


class Section:
    """Typed access to one mapping of the file; names the dotted key in every error.

    ``close()`` refuses the keys nobody asked for, so a misspelt key is an error instead
    of a silently ignored setting.
    """

    def __init__(self, raw: object, prefix: str = "") -> None:
        if not isinstance(raw, dict):
            where = prefix.rstrip(".") or "params"
            raise ParamsError(f"{where}: expected a mapping, got {shown(raw)}")
        self.raw: dict[Any, Any] = raw
        self.prefix = prefix
        self.read: set[str] = set()

    def key(self, name: str) -> str:
        """The dotted key of ``name`` in this section."""
        return self.prefix + name

    def get(self, name: str) -> Any:
        """The raw value of ``name``; a ParamsError if it is missing."""
        self.read.add(name)
        if name not in self.raw:
            raise ParamsError(f"{self.key(name)}: missing")
        return self.raw[name]

    def section(self, name: str) -> Section:
        """The mapping under ``name`` as a section of its own."""
        return Section(self.get(name), self.key(name) + ".")

    def close(self) -> None:
        """Refuse every key that was not read, naming the closest one that was."""
        unknown = sorted((k for k in self.raw if k not in self.read), key=str)
        if unknown:
            name = str(unknown[0])
            close = difflib.get_close_matches(name, sorted(self.read), n=1, cutoff=0.6)
            hint = f"did you mean {close[0]}?" if close else f"expected one of {', '.join(sorted(self.read))}"
            named = name if re.fullmatch(r"[\w.-]+", name) else shown(unknown[0])  # a key with a newline, say
            raise ParamsError(f"{self.key(named)}: unknown key; {hint}")


class Kind(Protocol):
    """What a declaration does: read and check one key of a section."""

    def read(self, section: Section, name: str) -> Any: ...


class _Single(Section):
    """A one-key section whose key is the full name given (a dotted key or a CLI option)."""

    def __init__(self, name: str, value: object) -> None:
        super().__init__({name: value})

    def key(self, name: str) -> str:
        return name


@dataclass(frozen=True)
class Integer:
    """An integer within [minimum, maximum]; ``optional`` also takes null (None)."""

    minimum: int | None = None
    maximum: int | None = None
    optional: bool = False

    def read(self, section: Section, name: str) -> int | None:
        value = section.get(name)
        if value is None and self.optional:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise ParamsError(f"{section.key(name)}: expected an integer, got {shown(value)}")
        if self.minimum is not None and value < self.minimum:
            raise ParamsError(f"{section.key(name)}: must be >= {self.minimum}, got {value}")
        if self.maximum is not None and value > self.maximum:
            raise ParamsError(f"{section.key(name)}: must be <= {self.maximum}, got {value}")
        return value


@dataclass(frozen=True)
class Number:
    """A finite-or-not number (NaN refused) within bounds; ``exclusive``: strictly above the minimum."""

    minimum: float | None = None
    maximum: float | None = None
    exclusive: bool = False

    def read(self, section: Section, name: str) -> float:
        value = section.get(name)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
            raise ParamsError(f"{section.key(name)}: expected a number, got {shown(value)}")
        value = float(value)
        if self.minimum is not None and (value <= self.minimum if self.exclusive else value < self.minimum):
            raise ParamsError(f"{section.key(name)}: must be {'>' if self.exclusive else '>='} {self.minimum}, "
                              f"got {value}")
        if self.maximum is not None and value > self.maximum:
            raise ParamsError(f"{section.key(name)}: must be <= {self.maximum}, got {value}")
        return value


@dataclass(frozen=True)
class Choice:
    """One of a fixed list of strings."""

    choices: tuple[str, ...]

    def read(self, section: Section, name: str) -> str:
        value = section.get(name)
        if not isinstance(value, str) or value not in self.choices:
            raise ParamsError(f"{section.key(name)}: unknown value {shown(value)}; "
                              f"expected one of {', '.join(self.choices)}")
        return value


@dataclass(frozen=True)
class Boolean:
    """true or false."""

    def read(self, section: Section, name: str) -> bool:
        value = section.get(name)
        if not isinstance(value, bool):
            raise ParamsError(f"{section.key(name)}: expected true or false, got {shown(value)}")
        return value


@dataclass(frozen=True)
class String:
    """A non-empty string."""

    def read(self, section: Section, name: str) -> str:
        value = section.get(name)
        if not isinstance(value, str) or not value:
            raise ParamsError(f"{section.key(name)}: expected a non-empty string, got {shown(value)}")
        return value


@dataclass(frozen=True)
class StringList:
    """A string, a list of non-empty strings, or null (no strings)."""

    def read(self, section: Section, name: str) -> tuple[str, ...]:
        value = section.get(name)
        if value is None:
            return ()
        values = [value] if isinstance(value, str) else value
        if not isinstance(values, list) or not all(isinstance(v, str) and v for v in values):
            raise ParamsError(f"{section.key(name)}: expected a string, a list of strings or null, got {shown(value)}")
        return tuple(values)


def scene_id(key: str, value: object) -> str:
    """``value`` as a scene id, or a ParamsError naming ``key``."""
    if not isinstance(value, str):
        raise ParamsError(f"{key}: {shown(value)} is not a quoted scene id; {QUOTE_HINT}")
    if not _SCENE_ID.match(value):
        raise ParamsError(f"{key}: {shown(value)} is not a scene id ({SCENE_ID_RULE})")
    return value


@dataclass(frozen=True)
class SceneId:
    """A scene id such as "2_10", "area1" or "ortho-2024_N", quoted (YAML reads 2_10 as a number)."""

    def read(self, section: Section, name: str) -> str:
        return scene_id(section.key(name), section.get(name))


@dataclass(frozen=True)
class SceneIds:
    """A list of distinct scene ids (case aside: they name files), empty only if ``allow_empty``."""

    allow_empty: bool = False

    def read(self, section: Section, name: str) -> tuple[str, ...]:
        value = section.get(name)
        if not isinstance(value, list) or (not value and not self.allow_empty):
            hint = f"; {QUOTE_HINT}" if isinstance(value, int) else ""
            raise ParamsError(f"{section.key(name)}: expected a list of scene ids like [\"2_10\"], "
                              f"got {shown(value)}{hint}")
        ids = tuple(scene_id(section.key(name), item) for item in value)
        if len({i.lower() for i in ids}) != len(ids):
            raise ParamsError(f"{section.key(name)}: lists a scene twice (scene ids name files: case does not count)")
        return ids


@dataclass(frozen=True)
class Nested:
    """A mapping read as the params dataclass ``of`` (its own keys declared there)."""

    of: type

    def read(self, section: Section, name: str) -> Any:
        return parse_section(self.of, section.section(name))


@dataclass(frozen=True)
class Custom:
    """A key with a shape of its own, read by ``parse(section, name)``."""

    parse: Callable[[Section, str], Any]

    def read(self, section: Section, name: str) -> Any:
        return self.parse(section, name)


@dataclass(frozen=True)
class OrNull:
    """``kind``, or null (None): a setting a record may leave unrecorded (a model card's ground sample
    distance); ``omissible``: the key may also be absent (a card's provenance, such as its training run)."""

    kind: Kind
    omissible: bool = False

    def read(self, section: Section, name: str) -> Any:
        if self.omissible and name not in section.raw:
            section.read.add(name)
            return None
        if section.get(name) is None:
            return None
        return self.kind.read(section, name)


def param(kind: Kind, default: Any = dataclasses.MISSING) -> Any:
    """Declare a params field: its kind (type and bounds), and optionally what the CLI takes without params.

    The default is never used for the file: every key must be written in ``params.yaml``.
    """
    return dataclasses.field(default=default, metadata={"param": kind})


def parse_section(cls: type[T], section: Section) -> T:
    """Read every declared field of ``cls`` from ``section``, in declaration order; refuse unknown keys
    (a key of an earlier version listed in the dataclass's ``RENAMED`` with what replaced it); then
    apply the rules between fields (the dataclass's ``check(section)``, if it has one)."""
    for old, replacement in getattr(cls, "RENAMED", {}).items():  # keys of earlier versions: say what replaced them
        if isinstance(section.raw, Mapping) and old in section.raw:
            raise ParamsError(f"{section.key(old)}: {replacement}")
    values = {f.name: f.metadata["param"].read(section, f.name) for f in dataclasses.fields(cls)  # type: ignore[arg-type]
              if "param" in f.metadata}
    parsed = cls(**values)
    section.close()
    check = getattr(parsed, "check", None)
    if check is not None:
        check(section)
    return parsed


def declared(cls: type, name: str) -> Kind:
    """The declaration of field ``name`` of params dataclass ``cls``."""
    fields: Mapping[str, dataclasses.Field[Any]] = {f.name: f for f in dataclasses.fields(cls)}
    return fields[name].metadata["param"]  # type: ignore[no-any-return]


def declared_default(cls: type, name: str) -> Any:
    """The default declared for field ``name`` of ``cls`` (what the CLI takes without params or a card)."""
    field = {f.name: f for f in dataclasses.fields(cls)}[name]
    if field.default is dataclasses.MISSING:
        raise LookupError(f"{cls.__name__}.{name} declares no default")
    return field.default


def option_type(cls: type, name: str) -> Callable[[str], Any]:
    """An ``argparse`` type for a CLI option mirroring field ``name`` of ``cls``: the same checks, its bounds."""
    kind = declared(cls, name)

    def parse(text: str) -> Any:
        value: object = text
        if isinstance(kind, Integer):
            try:
                value = int(text)
            except ValueError:
                raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
            low, high = kind.minimum, kind.maximum
            if (low is not None and value < low) or (high is not None and value > high):
                raise argparse.ArgumentTypeError(f"must be between {kind.minimum} and {kind.maximum}, got {value}")
            return value
        try:
            return kind.read(_Single("value", value), "value")
        except ParamsError as err:
            raise argparse.ArgumentTypeError(str(err).removeprefix("value: ")) from None

    parse.__name__ = type(kind).__name__.lower()  # argparse names the type in "invalid <name> value"
    return parse


def option_choices(cls: type, name: str) -> tuple[str, ...]:
    """The choices declared for field ``name`` of ``cls``, for a CLI option's ``choices``."""
    kind = declared(cls, name)
    if not isinstance(kind, Choice):
        raise TypeError(f"{cls.__name__}.{name} is not a choice")
    return kind.choices
