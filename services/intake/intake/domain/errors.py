"""Errors of the intake domain; each names the request field it is about so the API can say where."""

from __future__ import annotations


class IntakeError(Exception):
    """Base of the intake domain errors; `field` names the offending input (None when not about one)."""

    field: str | None = None

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        if field is not None:
            self.field = field


class InvalidMetadata(IntakeError):
    """A metadata value breaks a rule (number form, type, dates, identifiers)."""


class InvalidNumber(InvalidMetadata):
    """The number is neither in the state form (`1393/CVT-CL`) nor the Party form (`171-CV/BTGTU`)."""

    field = "number"


class StateSecretRefused(InvalidMetadata):
    """Confidential (mật, tối mật, tuyệt mật) documents must not travel over this system."""

    field = "confidentiality"


class InvalidAttachment(IntakeError):
    """A file's bytes do not match what it declares (e.g. a "PDF" that is not one)."""


class AttachmentTooLarge(IntakeError):
    """A file exceeds the configured upload limit."""


class DuplicateDirective(IntakeError):
    """The same issuer, number and issued date were already registered."""

    def __init__(self, message: str, *, existing_id: str) -> None:
        super().__init__(message, field="number")
        self.existing_id = existing_id


class IdempotencyConflict(IntakeError):
    """An Idempotency-Key was reused with a different request body."""

    field = "Idempotency-Key"


class DirectiveNotFound(IntakeError):
    """No directive with that id (or not visible to the caller)."""


class AttachmentNotFound(IntakeError):
    """No attachment with that id on that directive."""


class LifecycleConflict(IntakeError):
    """The directive's state does not allow the change (e.g. revoking a replaced directive)."""
