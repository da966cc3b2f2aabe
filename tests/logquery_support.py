"""The subset of Cloud Logging's query language that terraform/monitoring.tf's filters use,
evaluated against LogEntry-shaped dicts (tests of the alerts against the lines the code writes).

Semantics as documented for the Logging query language: NOT binds tightest, then OR, then AND
(so `a OR b AND c` is `(a OR b) AND c`); juxtaposed comparisons are ANDed; `=` and `:` compare
strings without regard to case; `=~` / `!~` are unanchored regular expressions (RE2; the
patterns used here mean the same in Python's `re`); `:*` tests presence; `<`, `<=`, `>`, `>=`
compare numerically when the field holds a number; a comparison on a missing field is false
(and its NOT true).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable

_SEVERITIES = ["DEFAULT", "DEBUG", "INFO", "NOTICE", "WARNING", "ERROR", "CRITICAL", "ALERT", "EMERGENCY"]
_TOKEN = re.compile(r"""
    \s*(?:
      (?P<string>"(?:[^"\\]|\\.)*")
    | (?P<op>:\*|=~|!~|!=|<=|>=|[=<>:])
    | (?P<paren>[()])
    | (?P<word>[A-Za-z0-9_.@/+-]+)
    )""", re.VERBOSE)
_MISSING = object()


class QueryError(ValueError):
    """The filter uses syntax this subset does not implement (the test must not guess)."""


@dataclass(frozen=True)
class Token:
    kind: str
    text: str


def tokenize(query: str) -> list[Token]:
    tokens, pos = [], 0
    query = query.rstrip()
    while pos < len(query):
        match = _TOKEN.match(query, pos)
        if not match or match.end() == pos:
            raise QueryError(f"cannot read {query[pos:pos + 30]!r}")
        kind = match.lastgroup
        text = match.group(kind)
        if kind == "string":
            text = re.sub(r"\\(.)", r"\1", text[1:-1])
        elif kind == "word" and text in ("AND", "OR", "NOT"):
            kind = text
        tokens.append(Token(kind, text))
        pos = match.end()
    return tokens


Predicate = Callable[[dict[str, Any]], bool]


class _Parser:
    def __init__(self, tokens: list[Token]) -> None:
        self.tokens = tokens
        self.i = 0

    def peek(self) -> Token | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self, kind: str | None = None) -> Token:
        token = self.peek()
        if token is None or (kind and token.kind != kind):
            raise QueryError(f"expected {kind or 'a token'} at {token}")
        self.i += 1
        return token

    def parse(self) -> Predicate:
        predicate = self.conjunction()
        if self.peek() is not None:
            raise QueryError(f"unexpected {self.peek()}")
        return predicate

    def conjunction(self) -> Predicate:
        parts = [self.disjunction()]
        while (token := self.peek()) is not None and not (token.kind == "paren" and token.text == ")"):
            if token.kind == "AND":
                self.take()
            parts.append(self.disjunction())  # juxtaposition is AND too
        return parts[0] if len(parts) == 1 else (lambda e, ps=tuple(parts): all(p(e) for p in ps))

    def disjunction(self) -> Predicate:
        parts = [self.unary()]
        while (token := self.peek()) is not None and token.kind == "OR":
            self.take()
            parts.append(self.unary())
        return parts[0] if len(parts) == 1 else (lambda e, ps=tuple(parts): any(p(e) for p in ps))

    def unary(self) -> Predicate:
        token = self.peek()
        if token is not None and token.kind == "NOT":
            self.take()
            inner = self.unary()
            return lambda e: not inner(e)
        if token is not None and token.kind == "paren" and token.text == "(":
            self.take()
            inner = self.conjunction()
            if self.take("paren").text != ")":
                raise QueryError("unbalanced parentheses")
            return inner
        return self.comparison()

    def comparison(self) -> Predicate:
        field = self.take("word").text
        op = self.take("op").text
        if op == ":*":
            return lambda e: _lookup(e, field) is not _MISSING
        value = self.take()
        if value.kind not in ("string", "word"):
            raise QueryError(f"expected a value after {field}{op}")
        return _compare(field, op, value.text, quoted=value.kind == "string")


def _lookup(entry: dict[str, Any], field: str) -> Any:
    node: Any = entry
    for part in field.split("."):
        if not isinstance(node, dict) or part not in node:
            return _MISSING
        node = node[part]
    return _MISSING if node is None else node


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _compare(field: str, op: str, literal: str, quoted: bool) -> Predicate:
    def holds(value: Any, operator: str) -> bool:
        if value is _MISSING or isinstance(value, (dict, list)):
            return False
        if operator == "=~":
            return re.search(literal, _text(value)) is not None
        if operator == ":":
            return literal.lower() in _text(value).lower()
        if field == "severity":
            left, right = _SEVERITIES.index(_text(value).upper()), _SEVERITIES.index(literal.upper())
        else:
            # A number compares as a number; a string only for equality (order needs numbers).
            left = None if isinstance(value, str) else _number(value)
            right = None if quoted else _number(literal)
            if left is None or right is None:
                return operator == "=" and _text(value).lower() == literal.lower()
        return {"=": left == right, "<": left < right, "<=": left <= right, ">": left > right,
                ">=": left >= right}[operator]

    if op in ("!=", "!~"):
        positive = "=" if op == "!=" else "=~"
        return lambda entry: not holds(_lookup(entry, field), positive)
    return lambda entry: holds(_lookup(entry, field), op)


def compile_filter(query: str) -> Predicate:
    return _Parser(tokenize(query)).parse()


def matches(query: str, entry: dict[str, Any]) -> bool:
    return compile_filter(query)(entry)
