"""Match operators of a rule's conditions: any, all, exact, regex and fuzzy over Vietnamese text."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from difflib import SequenceMatcher
from typing import Protocol

# RE2 is a pure matching engine (no I/O), the domain's one third-party import: a clerk's pattern is matched in
# time linear in the text whatever it says, where Python's backtracking `re` takes seconds on `^(a+)+$`.
import re2  # type: ignore[import-untyped]

from routing.domain.text import fold, nfc, words

OPERATORS = ("any", "all", "exact", "regex", "fuzzy")
DEFAULT_FUZZY_THRESHOLD = 0.85
MAX_PATTERN = 300  # characters of one regex, as a clerk writes it
# RE2's compiled program is bounded too: a pattern that needs more is refused when the rule is stored.
_RE2_MAX_MEM = 1 << 20


class InvalidPattern(ValueError):
    """A regex the linear-time engine refuses: bad syntax, backreferences, lookaround, or too large."""


class _Searcher(Protocol):
    def search(self, text: str) -> object | None: ...


def compile_pattern(pattern: str) -> _Searcher:
    """Compiles a rule's regex with RE2: no backreferences or lookaround, and word classes are ASCII."""
    if len(pattern) > MAX_PATTERN:
        raise InvalidPattern(f"a regular expression has at most {MAX_PATTERN} characters")
    options = re2.Options()
    options.log_errors = False  # the refusal is the caller's to report, not RE2's to print on stderr
    options.max_mem = _RE2_MAX_MEM
    try:
        compiled: _Searcher = re2.compile(pattern, options)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else exc
        text = reason.decode("utf-8", "replace") if isinstance(reason, bytes) else str(reason)
        raise InvalidPattern(text) from None
    return compiled


def contains_phrase(text: str, phrase: str) -> bool:
    """True when the phrase's words occur consecutively among the text's words (folded)."""
    needle = words(phrase)
    if not needle:
        return False
    hay = words(text)
    k = len(needle)
    return any(hay[i : i + k] == needle for i in range(len(hay) - k + 1))


def fuzzy_contains(text: str, phrase: str, threshold: float = DEFAULT_FUZZY_THRESHOLD) -> bool:
    """True when the text, or a run of its words about as long as the phrase, is close to the phrase.

    Windows one word shorter or longer are tried too, since a misspelling may split or join words.
    """
    target = " ".join(words(phrase))
    if not target:
        return False
    hay = words(text)
    if SequenceMatcher(None, " ".join(hay), target).ratio() >= threshold:
        return True
    k = len(target.split(" "))
    for size in {max(1, k - 1), k, k + 1}:
        for i in range(len(hay) - size + 1):
            if SequenceMatcher(None, " ".join(hay[i : i + size]), target).ratio() >= threshold:
                return True
    return False


@dataclass(frozen=True)
class Condition:
    """One operator with its operands; `evaluate` is true when the operator holds for the value."""

    operator: str
    values: tuple[str, ...]
    threshold: float = DEFAULT_FUZZY_THRESHOLD
    patterns: tuple[_Searcher, ...] = field(default=(), compare=False, repr=False)

    @classmethod
    def build(
        cls, operator: str, values: Sequence[str], threshold: float = DEFAULT_FUZZY_THRESHOLD
    ) -> Condition:
        """Builds a condition; InvalidPattern escapes for a refused regex so the caller can say which rule."""
        if operator not in OPERATORS:
            raise ValueError(f"unknown operator {operator!r}; use one of {', '.join(OPERATORS)}")
        vals = tuple(nfc(v) for v in values)
        patterns = tuple(compile_pattern(v) for v in vals) if operator == "regex" else ()
        return cls(operator, vals, threshold, patterns)

    def evaluate(self, value: str) -> bool:
        if self.operator == "any":
            return any(contains_phrase(value, v) for v in self.values)
        if self.operator == "all":
            return all(contains_phrase(value, v) for v in self.values)
        if self.operator == "exact":
            # Exact means the whole value, compared in NFC with whitespace collapsed; case matters.
            return nfc(value) in self.values
        if self.operator == "regex":
            text = nfc(value)
            return any(p.search(text) is not None for p in self.patterns)
        return any(fuzzy_contains(value, v, self.threshold) for v in self.values)


@dataclass(frozen=True)
class FieldMatch:
    """The conditions on one directive field; all must hold for at least one of the field's values."""

    field: str
    conditions: tuple[Condition, ...]

    def evaluate(self, candidates: Sequence[str]) -> bool:
        present = [c for c in candidates if c]
        if not present:
            return False
        return all(any(cond.evaluate(v) for v in present) for cond in self.conditions)


def folded_equal(a: str, b: str) -> bool:
    """Case- and diacritics-insensitive equality."""
    return fold(a) == fold(b)
