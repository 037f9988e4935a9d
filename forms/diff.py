"""What changed between two versions of a form's schema, and whether the data can follow.

Submissions from every published version land in the same tables, so a path keeps one
meaning across versions: a field may become a ``string`` (every stored value is one), but any
other type change, and any change to or from a group or repeat, would leave old data that
the new type cannot hold.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from forms.issues import FormIssue
from forms.schema import ChoiceList, Field, FormSchema

_CONTAINERS = frozenset({"structure", "repeat"})


@dataclass(frozen=True)
class Moved:
    old: Field
    new: Field


@dataclass(frozen=True)
class Retyped:
    path: str
    old_type: str
    new_type: str
    allowed: bool


@dataclass(frozen=True)
class ChoiceListChange:
    name: str
    added: tuple[str, ...]
    removed: tuple[str, ...]
    relabelled: tuple[str, ...]


@dataclass(frozen=True)
class SchemaDiff:
    added: list[Field]
    removed: list[Field]
    moved: list[Moved]
    retyped: list[Retyped]
    choice_lists_changed: list[ChoiceListChange]

    @property
    def breaking(self) -> list[Retyped]:
        return [r for r in self.retyped if not r.allowed]

    def to_json(self) -> dict[str, Any]:
        return {
            "added": [{"path": f.path, "type": f.type} for f in self.added],
            "removed": [{"path": f.path, "type": f.type} for f in self.removed],
            "moved": [{"from": m.old.path, "to": m.new.path} for m in self.moved],
            "retyped": [{"path": r.path, "oldType": r.old_type, "newType": r.new_type,
                         "allowed": r.allowed} for r in self.retyped],
            "choiceListsChanged": [
                {"name": c.name, "added": list(c.added), "removed": list(c.removed),
                 "relabelled": list(c.relabelled)}
                for c in self.choice_lists_changed
            ],
            "breaking": [r.path for r in self.breaking],
        }


def type_change_allowed(old_type: str, new_type: str) -> bool:
    """Whether data stored as ``old_type`` is still valid once the field is ``new_type``."""
    if old_type == new_type:
        return True
    return new_type == "string" and old_type not in _CONTAINERS


def diff_schemas(old: FormSchema, new: FormSchema) -> SchemaDiff:
    moved: list[Moved] = []
    retyped: list[Retyped] = []
    for f in new.fields:
        before = old.field(f.path)
        if before is None:
            continue
        if before.type != f.type:
            retyped.append(Retyped(
                f.path, before.type, f.type, type_change_allowed(before.type, f.type)))
        if before.repeat != f.repeat:
            moved.append(Moved(before, f))

    # A field that vanished from one path and appeared, same name and type, at another moved.
    arrived = [f for f in new.fields if old.field(f.path) is None]
    removed: list[Field] = []
    for f in old.fields:
        if new.field(f.path) is not None:
            continue
        match = next((a for a in arrived if a.name == f.name and a.type == f.type), None)
        if match is None:
            removed.append(f)
        else:
            arrived.remove(match)
            moved.append(Moved(f, match))

    changes = (
        _choice_list_change(name, old.choice_lists.get(name), new.choice_lists.get(name))
        for name in dict.fromkeys([*old.choice_lists, *new.choice_lists])
    )
    return SchemaDiff(
        added=arrived,
        removed=removed,
        moved=moved,
        retyped=retyped,
        choice_lists_changed=[c for c in changes if c is not None],
    )


def _choice_list_change(name: str, old: ChoiceList | None,
                        new: ChoiceList | None) -> ChoiceListChange | None:
    before = {c.value: c.labels for c in old.choices} if old else {}
    after = {c.value: c.labels for c in new.choices} if new else {}
    change = ChoiceListChange(
        name=name,
        added=tuple(v for v in after if v not in before),
        removed=tuple(v for v in before if v not in after),
        relabelled=tuple(v for v in after if v in before and before[v] != after[v]),
    )
    return change if change.added or change.removed or change.relabelled else None


def check_compatible(history: list[FormSchema], new: FormSchema) -> list[FormIssue]:
    """One error per field of ``new`` whose type cannot hold data some earlier version stored
    at the same path (every published version counts, not only the latest)."""
    issues = []
    for f in new.fields:
        conflicts = dict.fromkeys(
            before.type for schema in history
            if (before := schema.field(f.path)) is not None
            and not type_change_allowed(before.type, f.type)
        )
        if conflicts:
            issues.append(FormIssue(
                level="error",
                code="form.field_retyped",
                message=(f"The field {f.path} was {' / '.join(conflicts)} in an earlier version "
                         f"and cannot become {f.type}: keep its type, change it to string, "
                         f"or give the field a new name."),
                field=f.path,
            ))
    return issues
