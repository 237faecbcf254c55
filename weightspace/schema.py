"""Declared types and ranges of config fields, checked before a command writes anything.

A config's schema maps every dotted key of the config (`"train.num_steps"`) to a `Rule`; `problems`
checks a config against it and returns one readable line per bad value, so an entry point can refuse
them all at once. A key of the config without a rule is the code's mistake, not the user's: it raises.

    RULES = {"train.num_steps": schema.Int(1), "optim.lr": schema.Float(0, open_low=True), ...}
    schema.problems(config, RULES)  # ["optim.lr=inf must be a finite number > 0", ...]
"""

import contextlib
import dataclasses
import itertools
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import ml_collections


@dataclasses.dataclass(frozen=True)
class Rule:
    """What one field may hold.

    Attributes:
      kind: "int", "float", "bool", "str" or "tuple".
      low, high: the inclusive range of a number (of every element of a tuple); None: unbounded.
      open_low, open_high: the bound itself is excluded.
      choices: the only values a string (or every element of a tuple) may take.
      element: the rule of every element of a tuple.
      nonempty, increasing, unique, length: what a tuple must also be (length None: any).
      optional: None is accepted too.
      words: what the rule says in a message, where its parts say it less well.
    """

    kind: str
    low: float | None = None
    high: float | None = None
    open_low: bool = False
    open_high: bool = False
    choices: tuple[Any, ...] | None = None
    element: "Rule | None" = None
    nonempty: bool = False
    increasing: bool = False
    unique: bool = False
    length: int | None = None
    optional: bool = False
    words: str | None = None

    def describe(self) -> str:
        """The rule in words, as a message ends: "an integer >= 1", "one of ['a', 'b']"."""
        if self.words:
            return self.words
        if self.kind == "tuple":
            words = "a non-empty tuple" if self.nonempty else "a tuple"
            if self.length is not None:
                words = f"a tuple of {self.length}"
            extra = [w for w, on in (("increasing", self.increasing), ("without repeats", self.unique)) if on]
            return f"{words}{' (' + ', '.join(extra) + ')' if extra else ''}, each {self.element.describe()}"
        if self.choices is not None:
            return f"one of {list(self.choices)}"
        noun = {"int": "an integer", "float": "a finite number", "bool": "true or false", "str": "a string"}
        bounds = []
        if self.low is not None:
            bounds.append(f"{'>' if self.open_low else '>='} {self.low:g}")
        if self.high is not None:
            bounds.append(f"{'<' if self.open_high else '<='} {self.high:g}")
        return " ".join([noun[self.kind], " and ".join(bounds)]).strip()

    def fits(self, value: Any) -> bool:
        """Whether `value` is of the rule's kind and in its range."""
        if value is None:
            return self.optional
        if self.kind == "tuple":
            if not isinstance(value, tuple | list) or (self.nonempty and not value):
                return False
            if self.length is not None and len(value) != self.length:
                return False
            if not all(self.element.fits(v) for v in value):
                return False
            if self.increasing and any(b <= a for a, b in itertools.pairwise(value)):
                return False
            return not (self.unique and len(set(value)) != len(value))
        if self.kind == "bool":
            return isinstance(value, bool)
        if self.kind == "str":
            return isinstance(value, str) and (self.choices is None or value in self.choices)
        number = (int,) if self.kind == "int" else (int, float)
        if isinstance(value, bool) or not isinstance(value, number) or not math.isfinite(value):
            return False
        if self.choices is not None and value not in self.choices:
            return False
        if self.low is not None and (value <= self.low if self.open_low else value < self.low):
            return False
        return self.high is None or (value < self.high if self.open_high else value <= self.high)


def Int(low: int | None = 0, high: int | None = None) -> Rule:  # noqa: N802 (rules read as types)
    """An integer in [low, high] (default: >= 0)."""
    return Rule("int", low, high)


def Float(low: float | None = None, high: float | None = None, open_low=False, open_high=False) -> Rule:  # noqa: N802
    """A finite number in the range (NaN and infinities never fit)."""
    return Rule("float", low, high, open_low, open_high)


def Fraction(open_high: bool = False) -> Rule:  # noqa: N802
    """A number in [0, 1] (or [0, 1))."""
    return Float(0.0, 1.0, open_high=open_high)


def Choice(*choices: Any) -> Rule:  # noqa: N802
    """A string (or number) among `choices`."""
    kind = "str" if all(isinstance(c, str) for c in choices) else "float"
    return Rule(kind, choices=tuple(choices))


def Bool() -> Rule:  # noqa: N802
    return Rule("bool")


def Text(optional: bool = False) -> Rule:  # noqa: N802
    """Any string (a path, a name checked elsewhere)."""
    return Rule("str", optional=optional)


def Tuple(  # noqa: N802
    element: Rule,
    nonempty: bool = True,
    increasing: bool = False,
    unique: bool = False,
    words: str | None = None,
    length: int | None = None,
) -> Rule:
    return Rule(
        "tuple", element=element, nonempty=nonempty, increasing=increasing, unique=unique, length=length, words=words
    )


# A check of fields against each other: returns the lines of what is wrong (none: fine).
Relation = Callable[[ml_collections.ConfigDict], list[str]]


def leaves(config: ml_collections.ConfigDict | Mapping, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Every (dotted key, value) of a nested config."""
    for key, value in config.items():
        if isinstance(value, ml_collections.ConfigDict | dict):
            yield from leaves(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def problems(
    config: ml_collections.ConfigDict,
    rules: Mapping[str, Rule],
    relations: Sequence[Relation] = (),
    skip: Sequence[str] = (),
) -> list[str]:
    """One line per field of `config` its rule refuses, then the relations' lines. Keys under a prefix in
    `skip` are checked elsewhere (e.g. a task family's settings)."""
    found = []
    for key, value in leaves(config):
        if any(key == s or key.startswith(f"{s}.") for s in skip):
            continue
        rule = rules.get(key)
        if rule is None:
            raise KeyError(f"The config field {key!r} has no declared rule; add one to its schema.")
        if not rule.fits(value):
            found.append(f"{key}={value!r} must be {rule.describe()}")
    for relation in relations:
        # A relation that cannot read a malformed field adds nothing: the field's own rule names it above.
        with contextlib.suppress(TypeError, ValueError, KeyError, IndexError):
            found += relation(config)
    return found
