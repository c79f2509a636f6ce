"""Tasks: roles and their precedence, statuses, and the state machine of a task's life."""

from __future__ import annotations

from enum import StrEnum

from routing.domain.errors import InvalidTransition


class Role(StrEnum):
    CHU_TRI = "chu_tri"
    PHOI_HOP = "phoi_hop"
    DE_BIET = "de_biet"


# Lower is stronger: a unit reached as chu_tri by one rule and phoi_hop by another leads.
ROLE_RANK = {Role.CHU_TRI: 0, Role.PHOI_HOP: 1, Role.DE_BIET: 2}


def stronger(a: Role, b: Role) -> Role:
    return a if ROLE_RANK[a] <= ROLE_RANK[b] else b


class Status(StrEnum):
    ASSIGNED = "assigned"
    RECEIVED = "received"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    REJECTED = "rejected"
    CANCELLED = "cancelled"


OPEN = frozenset({Status.ASSIGNED, Status.RECEIVED, Status.IN_PROGRESS})
# What a unit may report through POST /tasks/{id}/status.
UNIT_REPORTABLE = frozenset({Status.IN_PROGRESS, Status.COMPLETED, Status.REJECTED})

_ALLOWED: dict[Status, frozenset[Status]] = {
    Status.ASSIGNED: frozenset({Status.RECEIVED, Status.CANCELLED}),
    Status.RECEIVED: frozenset({Status.IN_PROGRESS, Status.COMPLETED, Status.REJECTED, Status.CANCELLED}),
    Status.IN_PROGRESS: frozenset({Status.COMPLETED, Status.REJECTED, Status.CANCELLED}),
    Status.COMPLETED: frozenset(),
    # A clerk may hand a rejected or cancelled task to the same unit again.
    Status.REJECTED: frozenset({Status.ASSIGNED, Status.CANCELLED}),
    Status.CANCELLED: frozenset({Status.ASSIGNED}),
}


def can_move(current: Status, target: Status) -> bool:
    return target in _ALLOWED[current]


def check_move(current: Status, target: Status, *, note: str | None = None) -> None:
    """Raises InvalidTransition for a move the machine refuses; a rejection needs a note."""
    if current == Status.COMPLETED:
        raise InvalidTransition("the task is completed; completed is final")
    if not can_move(current, target):
        raise InvalidTransition(f"a task cannot go from {current.value} to {target.value}")
    if target == Status.REJECTED and not (note and note.strip()):
        raise InvalidTransition("a rejection needs a note saying why", field="note")
