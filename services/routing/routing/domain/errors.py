"""Errors raised by the routing domain; the API's error table maps each to a problem+json answer."""

from __future__ import annotations

from dataclasses import dataclass


class RoutingError(Exception):
    """Base of every routing domain error."""


class NotFound(RoutingError):
    """Raised for a unit, task, directive or attachment that does not exist or is not visible."""


class UnitNotFound(NotFound):
    """The unit code is unknown."""


class TaskNotFound(NotFound):
    """The task is unknown, or belongs to another unit (both answer the same)."""


class DirectiveNotFound(NotFound):
    """The directive has not reached routing."""


class RuleVersionNotFound(NotFound):
    """No rule set was stored under that version."""


class AttachmentNotFound(NotFound):
    """The attachment is not part of the task's directive."""


class UnitDeactivated(RoutingError):
    """The caller's unit was deactivated: its tokens no longer act for it, even before they expire."""


class InvalidUnit(RoutingError):
    """A unit definition is malformed; `field` names the offending field."""

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message)
        self.field = field


class InvalidTransition(RoutingError):
    """A task status change the state machine does not allow."""

    def __init__(self, message: str, *, field: str = "status") -> None:
        super().__init__(message)
        self.field = field


class InvalidAssignment(RoutingError):
    """A clerk's assignment request is not acceptable; `field` names the offending field."""

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class RuleIssue:
    """One problem in a rule set: which rule, which field, what is wrong."""

    rule: str
    field: str
    message: str

    @property
    def key(self) -> str:
        return f"{self.rule}.{self.field}" if self.field else self.rule

    def __str__(self) -> str:
        return f"rule {self.rule}: {self.field}: {self.message}"


class RuleSetInvalid(RoutingError):
    """A rule set failed validation; carries every issue found, not only the first."""

    def __init__(self, issues: list[RuleIssue]) -> None:
        super().__init__(f"{len(issues)} problem(s) in the rule set: " + "; ".join(str(i) for i in issues))
        self.issues = issues

    @property
    def errors(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for issue in self.issues:
            out.setdefault(issue.key, []).append(issue.message)
        return out
