"""``$filter`` and ``$orderby`` for the submission feeds: a tokenizer and a recursive-descent
parser for the part of OData's expression grammar ODK Central supports, checked and typed.

What is supported (as Central): the ``__system`` fields ``submissionDate``, ``updatedAt``,
``deletedAt``, ``submitterId`` and ``reviewState`` (also as ``$root/Submissions/__system/…``
from a repeat table); ``eq ne lt le gt ge``; ``and or not``; parentheses; literals ``null``,
``true``/``false``, numbers, ``'strings'`` (``''`` escapes a quote), dates and
date-times with an offset; the functions ``year month day hour minute second`` (of a date-time)
and ``now()``. ``not`` applies to the comparison after it (``not a eq b`` is
``not (a eq b)``), as Central's parser reads it.

Syntax errors are 400.18. Valid OData the feed does not support is 501.4 (operators such as
``has``, ``in``, ``add``, functions such as ``contains``) or 501.5 (any other field).
"""

from __future__ import annotations

import datetime as dt
import decimal
import re
from collections.abc import Iterator
from dataclasses import dataclass

from server.errors import Problem, Problems

SYSTEM_PREFIXES = ("__system/", "$root/Submissions/__system/")
FIELD_TYPES = {
    "submissionDate": "datetime",
    "updatedAt": "datetime",
    "deletedAt": "datetime",
    "submitterId": "int",
    "reviewState": "string",
}
COMPARISONS = frozenset({"eq", "ne", "lt", "le", "gt", "ge"})
EXTRACTS = ("year", "month", "day", "hour", "minute", "second")
UNSUPPORTED_OPERATORS = frozenset({"has", "in", "add", "sub", "mul", "div", "divby", "mod"})
MAX_LENGTH = 4000
MAX_DEPTH = 100


# -- the AST ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class FieldRef:
    name: str
    """A key of ``FIELD_TYPES``."""
    at: int


@dataclass(frozen=True)
class Literal:
    value: object
    """``None``, ``bool``, ``int``, ``Decimal``, ``str``, ``date`` or aware ``datetime``."""
    at: int


@dataclass(frozen=True)
class Now:
    at: int


@dataclass(frozen=True)
class Extract:
    part: str
    """One of ``EXTRACTS``."""
    operand: Value
    at: int


@dataclass(frozen=True)
class Compare:
    op: str
    left: Value
    right: Value


@dataclass(frozen=True)
class Logical:
    op: str
    """``and`` or ``or``."""
    left: Expr
    right: Expr


@dataclass(frozen=True)
class Not:
    operand: Expr


Value = FieldRef | Literal | Now | Extract
Expr = Compare | Logical | Not | Literal
"""A boolean expression (a bare ``Literal`` is ``true`` or ``false``)."""


@dataclass(frozen=True)
class OrderKey:
    field: str
    descending: bool


# -- tokens ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Token:
    kind: str
    """``(`` ``)`` ``,`` ``word`` ``path`` ``string`` ``number`` ``date`` ``datetime``."""
    text: str
    at: int


def _syntax(reason: str, at: int | None = None) -> Problem:
    where = f" (at {at})" if at is not None else ""
    return Problems.odata_filter_unparseable(reason=f"{reason}{where}")


_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}(?:[Tt][0-9:.]+(?:[Zz]|[+-]\d{2}:\d{2})?)?")
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?")
_WORD = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*(?:/[A-Za-z_$][A-Za-z0-9_$]*)*")


def tokenize(text: str) -> list[Token]:
    """Tokens only: the grammar is the parser's (``_Parser``), not patterns'."""
    tokens: list[Token] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c in " \t\r\n":
            i += 1
            continue
        if c in "(),":
            tokens.append(Token(c, c, i))
            i += 1
            continue
        if c == "'":
            token, i = _string(text, i)
            tokens.append(token)
            continue
        for kind, pattern in (("datetime", _DATETIME), ("number", _NUMBER), ("word", _WORD)):
            match = pattern.match(text, i)
            if match:
                raw = match.group()
                if kind == "datetime" and "T" not in raw.upper():
                    kind = "date"
                elif kind == "word" and "/" in raw:
                    kind = "path"
                end = match.end()
                if end < n and (text[end].isalnum() or text[end] in "_$.:/"):
                    raise _syntax(f"unexpected {text[i:end + 1]!r}", i)
                tokens.append(Token(kind, raw, i))
                i = end
                break
        else:
            raise _syntax(f"unexpected character {c!r}", i)
    return tokens


def _string(text: str, start: int) -> tuple[Token, int]:
    i, out = start + 1, []
    while i < len(text):
        if text[i] == "'":
            if text[i + 1:i + 2] == "'":
                out.append("'")
                i += 2
                continue
            return Token("string", "".join(out), start), i + 1
        out.append(text[i])
        i += 1
    raise _syntax("unterminated string", start)


# -- the parser ------------------------------------------------------------------------------

class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = tokenize(text)
        self.i = 0
        self.depth = 0
        self.end = len(text)

    def peek(self, offset: int = 0) -> Token | None:
        j = self.i + offset
        return self.tokens[j] if j < len(self.tokens) else None

    def take(self) -> Token:
        token = self.peek()
        if token is None:
            raise _syntax("unexpected end of expression", self.end)
        self.i += 1
        return token

    def keyword(self, *words: str) -> Token | None:
        token = self.peek()
        if token is not None and token.kind == "word" and token.text in words:
            self.i += 1
            return token
        return None

    def expect(self, kind: str) -> Token:
        token = self.take()
        if token.kind != kind:
            raise _syntax(f"expected {kind!r} but found {token.text!r}", token.at)
        return token

    def parse(self) -> Expr:
        expr = _condition(self.boolean())
        token = self.peek()
        if token is not None:
            self._unsupported_or_syntax(token, "unexpected")
        return expr

    def _unsupported_or_syntax(self, token: Token, what: str) -> None:
        if token.kind == "word" and token.text in UNSUPPORTED_OPERATORS:
            raise Problems.odata_unsupported_expression(type="operator", at=token.at,
                                                        text=token.text)
        raise _syntax(f"{what} {token.text!r}", token.at)

    def nested(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise _syntax("the expression is nested too deeply")

    def boolean(self) -> Expr | Value:
        self.nested()
        left = self.conjunction()
        while self.keyword("or"):
            left = Logical("or", _condition(left), _condition(self.conjunction()))
        self.depth -= 1
        return left

    def conjunction(self) -> Expr | Value:
        left = self.negation()
        while self.keyword("and"):
            left = Logical("and", _condition(left), _condition(self.negation()))
        return left

    def negation(self) -> Expr | Value:
        if self.keyword("not"):
            self.nested()
            operand = _condition(self.negation())
            self.depth -= 1
            return Not(operand)
        return self.comparison()

    def comparison(self) -> Expr | Value:
        left = self.primary()
        operator = self.peek()
        if operator is not None and operator.kind == "word":
            if operator.text in COMPARISONS:
                self.take()
                return _checked(Compare(operator.text, _operand(left, operator.at),
                                        _operand(self.primary(), operator.at)), operator.at)
            if operator.text in UNSUPPORTED_OPERATORS:
                self._unsupported_or_syntax(operator, "unexpected")
        return left

    def primary(self) -> Expr | Value:
        token = self.peek()
        if token is not None and token.kind == "(":
            self.take()
            inner = self.boolean()
            self.expect(")")
            return inner
        return self.value()

    def value(self) -> Value:
        token = self.take()
        if token.kind == "string":
            return Literal(token.text, token.at)
        if token.kind == "number":
            return Literal(_number(token), token.at)
        if token.kind == "date":
            return Literal(_date(token), token.at)
        if token.kind == "datetime":
            return Literal(_datetime(token), token.at)
        if token.kind == "path":
            return self.field(token)
        if token.kind == "word":
            following = self.peek()
            if following is not None and following.kind == "(":
                return self.call(token)
            if token.text in ("null", "true", "false"):
                return Literal({"null": None, "true": True, "false": False}[token.text],
                               token.at)
            if token.text in COMPARISONS | {"and", "or", "not"}:
                raise _syntax(f"unexpected {token.text!r}", token.at)
            return self.field(token)
        raise _syntax(f"unexpected {token.text!r}", token.at)

    def field(self, token: Token) -> FieldRef:
        for prefix in SYSTEM_PREFIXES:
            name = token.text[len(prefix):] if token.text.startswith(prefix) else None
            if name in FIELD_TYPES:
                return FieldRef(name, token.at)
        raise Problems.odata_unsupported_field(text=token.text, at=token.at)

    def call(self, name: Token) -> Value:
        self.expect("(")
        if name.text == "now":
            self.expect(")")
            return Now(name.at)
        if name.text not in EXTRACTS:
            raise Problems.odata_unsupported_expression(type="function", at=name.at,
                                                        text=name.text)
        operand = _operand(self.primary(), name.at)
        closing = self.take()
        if closing.kind != ")":
            raise _syntax(f"{name.text}() takes one argument", closing.at)
        if _type(operand) not in ("datetime", "date", "null"):
            raise _syntax(f"{name.text}() needs a date or date-time", name.at)
        return Extract(name.text, operand, name.at)


def _is_condition(node: Expr | Value) -> bool:
    return isinstance(node, (Compare, Logical, Not)) or (
        isinstance(node, Literal) and isinstance(node.value, bool))


def _condition(node: Expr | Value) -> Expr:
    """What ``and``, ``or``, ``not`` and ``$filter`` itself take: a comparison or another
    condition, not a bare value."""
    if not _is_condition(node):
        at = getattr(node, "at", None)
        raise _syntax("expected a comparison (eq, ne, lt, le, gt, ge)", at)
    return node  # type: ignore[return-value]


def _operand(node: Expr | Value, at: int) -> Value:
    """What comparisons and functions take: a value, not a condition."""
    if isinstance(node, (Compare, Logical, Not)):
        raise _syntax("a condition cannot be compared or passed to a function", at)
    return node


def _number(token: Token) -> int | decimal.Decimal:
    try:
        if any(c in token.text for c in ".eE"):
            value = decimal.Decimal(token.text)
            if not value.is_finite():
                raise decimal.InvalidOperation
            return value
        return int(token.text)
    except (ValueError, decimal.InvalidOperation):
        raise _syntax(f"{token.text!r} is not a number", token.at) from None


def _date(token: Token) -> dt.date:
    try:
        return dt.date.fromisoformat(token.text)
    except ValueError:
        raise _syntax(f"{token.text!r} is not a date", token.at) from None


def _datetime(token: Token) -> dt.datetime:
    value = parse_datetime(token.text)
    if value is None:
        raise _syntax(f"{token.text!r} is not a date-time with an offset (Z or ±hh:mm)",
                      token.at)
    return value


def parse_datetime(text: str) -> dt.datetime | None:
    """An OData DateTimeOffset (``2026-11-28T10:00:00Z``, ``…T10:00+03:00``): aware, or
    ``None``."""
    raw = text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text
    try:
        value = dt.datetime.fromisoformat(raw)
    except ValueError:
        return None
    return value if value.tzinfo is not None else None


# -- types -----------------------------------------------------------------------------------

def _type(value: Value) -> str:
    if isinstance(value, FieldRef):
        return FIELD_TYPES[value.name]
    if isinstance(value, (Now,)):
        return "datetime"
    if isinstance(value, Extract):
        return "int"
    v = value.value
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, decimal.Decimal):
        return "decimal"
    if isinstance(v, dt.datetime):
        return "datetime"
    if isinstance(v, dt.date):
        return "date"
    return "string"


_COMPATIBLE = {
    "datetime": {"datetime", "date"},
    "date": {"datetime", "date"},
    "int": {"int", "decimal"},
    "decimal": {"int", "decimal"},
    "string": {"string"},
    "bool": {"bool"},
}


def _checked(compare: Compare, at: int) -> Compare:
    """Coerce literals to the other side's type where OData clients write them as strings
    (``reviewState``, ids, dates) and refuse comparisons that can never make sense."""
    left, right = _coerce(compare.left, compare.right), _coerce(compare.right, compare.left)
    lt, rt = _type(left), _type(right)
    if "null" in (lt, rt):
        if compare.op not in ("eq", "ne"):
            raise _syntax(f"null can only be compared with eq or ne, not {compare.op}", at)
    elif rt not in _COMPATIBLE[lt]:
        raise _syntax(f"cannot compare a {lt} with a {rt}", at)
    return Compare(compare.op, left, right)


def _coerce(value: Value, other: Value) -> Value:
    if not (isinstance(value, Literal) and isinstance(value.value, str)) \
            or isinstance(other, Literal):
        return value
    wanted = _type(other)
    text = value.value
    if wanted == "datetime":
        parsed: object = parse_datetime(text)
        if parsed is None:
            try:
                parsed = dt.date.fromisoformat(text)
            except ValueError:
                raise _syntax(f"'{text}' is not a date or date-time", value.at) from None
        return Literal(parsed, value.at)
    if wanted == "int" and text.strip().isdigit():
        return Literal(int(text), value.at)
    return value


# -- entry points ----------------------------------------------------------------------------

def parse_filter(text: str) -> Expr:
    if len(text) > MAX_LENGTH:
        raise _syntax(f"longer than {MAX_LENGTH} characters")
    if not text.strip():
        raise _syntax("the expression is empty")
    return _Parser(text).parse()


def parse_orderby(text: str) -> tuple[OrderKey, ...]:
    """``__system/submissionDate desc, __system/reviewState`` (asc is the default)."""
    keys: list[OrderKey] = []
    for item in text.split(","):
        words = item.split()
        if not words or len(words) > 2:
            raise _syntax(f"cannot order by {item.strip()!r}")
        if len(words) == 2 and words[1].lower() not in ("asc", "desc"):
            raise Problems.odata_unsupported_field(text=words[1], at=text.find(words[1]))
        field = next((words[0][len(p):] for p in SYSTEM_PREFIXES
                      if words[0].startswith(p) and words[0][len(p):] in FIELD_TYPES), None)
        if field is None:
            raise Problems.odata_unsupported_field(text=words[0], at=text.find(words[0]))
        keys.append(OrderKey(field, len(words) == 2 and words[1].lower() == "desc"))
    return tuple(keys)


def walk(expr: Expr | Value) -> Iterator[Expr | Value]:
    stack: list[Expr | Value] = [expr]
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, (Compare, Logical)):
            stack += [node.left, node.right]
        elif isinstance(node, (Not, Extract)):
            stack.append(node.operand)


def mentions(expr: Expr, field: str) -> bool:
    """Whether the expression refers to ``__system/<field>`` (``deletedAt`` brings deleted
    submissions into the feed, as in Central)."""
    return any(isinstance(n, FieldRef) and n.name == field for n in walk(expr))
