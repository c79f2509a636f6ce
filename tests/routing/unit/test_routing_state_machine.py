"""The task state machine: assigned → received → in_progress → completed, rejection and reassignment."""

import pytest
from routing.domain.errors import InvalidTransition
from routing.domain.tasks import Role, Status, check_move, stronger

S = Status


@pytest.mark.parametrize(
    ("current", "target"),
    [
        (S.ASSIGNED, S.RECEIVED),
        (S.RECEIVED, S.IN_PROGRESS),
        (S.RECEIVED, S.COMPLETED),
        (S.IN_PROGRESS, S.COMPLETED),
        (S.IN_PROGRESS, S.REJECTED),
        (S.REJECTED, S.ASSIGNED),
        (S.ASSIGNED, S.CANCELLED),
    ],
)
def test_allowed_moves(current, target):
    check_move(current, target, note="lý do")


@pytest.mark.parametrize(
    ("current", "target"),
    [
        (S.ASSIGNED, S.IN_PROGRESS),
        (S.ASSIGNED, S.COMPLETED),
        (S.COMPLETED, S.IN_PROGRESS),
        (S.COMPLETED, S.REJECTED),
        (S.IN_PROGRESS, S.RECEIVED),
        (S.CANCELLED, S.COMPLETED),
    ],
)
def test_refused_moves(current, target):
    with pytest.raises(InvalidTransition):
        check_move(current, target, note="x")


def test_completed_is_final_with_a_clear_message():
    with pytest.raises(InvalidTransition, match="final"):
        check_move(S.COMPLETED, S.CANCELLED)


def test_rejection_needs_a_note():
    with pytest.raises(InvalidTransition) as exc:
        check_move(S.RECEIVED, S.REJECTED, note="  ")
    assert exc.value.field == "note"


def test_role_precedence():
    assert stronger(Role.PHOI_HOP, Role.CHU_TRI) is Role.CHU_TRI
    assert stronger(Role.DE_BIET, Role.PHOI_HOP) is Role.PHOI_HOP
