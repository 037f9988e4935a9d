"""The field schema of one form version: what submissions hold and how exports lay it out.

Built from the XForm once, at upload (see ``forms.xform``), then stored as JSON and read back
by submission ingestion, exports and version diffs, so the JSON shape is a contract:
``FormSchema.from_json(s.to_json()) == s`` always, and ``JSON_FORMAT`` changes when it does.

Paths follow ODK Central: relative to the instance root, ``/household/members/name``.
Types follow Central too (``string``, ``int``, ``select1``, ``structure``, ``repeat`` …),
except that selects are typed by their control (``select1``, ``select``, ``rank``) rather
than by their bind (always ``string``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Literal

JSON_FORMAT = 1
DEFAULT_LANGUAGE = "default"
"""The language key for text that is not translated (a plain ``<label>`` or choice label)."""

FieldKind = Literal["question", "group", "repeat", "meta"]
ChoiceSource = Literal["inline", "instance", "file", "repeat"]


@dataclass(frozen=True)
class Choice:
    value: str
    labels: dict[str, str] = dataclasses.field(default_factory=dict)
    """Language → label; ``DEFAULT_LANGUAGE`` when untranslated."""


@dataclass(frozen=True)
class ChoiceList:
    """The options of one or more select questions.

    ``source`` says where they live: ``inline`` (``<item>`` in the body), ``instance`` (a
    secondary instance inside the form), ``file`` (an attached CSV/XML/GeoJSON: unknown until
    the file arrives, so ``choices`` is empty) or ``repeat`` (answers given earlier in the same
    submission, also empty).
    """

    name: str
    choices: tuple[Choice, ...]
    source: ChoiceSource

    def values(self) -> list[str]:
        return [c.value for c in self.choices]


@dataclass(frozen=True)
class Field:
    path: str
    name: str
    type: str
    kind: FieldKind
    repeat: str | None
    """Path of the nearest enclosing repeat, not counting the field itself."""
    group: str | None
    """Path of the parent group or repeat; ``None`` at the root level."""
    order: int
    binary: bool = False
    choice_list: str | None = None
    choice_filter: bool = False
    labels: dict[str, str] = dataclasses.field(default_factory=dict)
    appearance: str | None = None
    required: bool = False
    relevant: str | None = None
    calculate: str | None = None


@dataclass(frozen=True)
class FormSchema:
    fields: tuple[Field, ...]
    choice_lists: dict[str, ChoiceList]
    languages: tuple[str, ...] = ()
    default_language: str | None = None

    @cached_property
    def _by_path(self) -> dict[str, Field]:
        return {f.path: f for f in self.fields}

    def field(self, path: str) -> Field | None:
        return self._by_path.get(path)

    def repeats(self) -> list[Field]:
        return [f for f in self.fields if f.kind == "repeat"]

    def questions(self) -> list[Field]:
        """What the enumerator answers: no groups, repeats or metadata."""
        return [f for f in self.fields if f.kind == "question"]

    def fields_in(self, repeat: str | None) -> list[Field]:
        """The fields one export table holds: those whose nearest repeat is ``repeat``
        (``None`` for the submission table), in form order."""
        return [f for f in self.fields if f.repeat == repeat]

    def to_json(self) -> dict[str, Any]:
        return {
            "format": JSON_FORMAT,
            "fields": [_field_to_json(f) for f in self.fields],
            "choice_lists": {
                name: {
                    "source": cl.source,
                    "choices": [{"value": c.value, "labels": dict(c.labels)} for c in cl.choices],
                }
                for name, cl in self.choice_lists.items()
            },
            "languages": list(self.languages),
            "default_language": self.default_language,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FormSchema:
        if data.get("format") != JSON_FORMAT:
            raise ValueError(f"unsupported form schema format {data.get('format')!r}")
        return cls(
            fields=tuple(Field(**f) for f in data["fields"]),
            choice_lists={
                name: ChoiceList(
                    name=name,
                    source=cl["source"],
                    choices=tuple(Choice(c["value"], c["labels"]) for c in cl["choices"]),
                )
                for name, cl in data["choice_lists"].items()
            },
            languages=tuple(data["languages"]),
            default_language=data["default_language"],
        )


def _field_to_json(f: Field) -> dict[str, Any]:
    return {
        "path": f.path,
        "name": f.name,
        "type": f.type,
        "kind": f.kind,
        "repeat": f.repeat,
        "group": f.group,
        "order": f.order,
        "binary": f.binary,
        "choice_list": f.choice_list,
        "choice_filter": f.choice_filter,
        "labels": dict(f.labels),
        "appearance": f.appearance,
        "required": f.required,
        "relevant": f.relevant,
        "calculate": f.calculate,
    }
