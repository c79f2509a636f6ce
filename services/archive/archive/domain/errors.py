"""Errors the archive domain raises; the API maps each to a problem+json type."""

from __future__ import annotations


class ArchiveError(Exception):
    """Base of every archive domain error."""


class RecordNotFound(ArchiveError):
    """No record with the requested id."""


class DirectiveNotFound(ArchiveError):
    """The archive knows nothing of the requested directive."""


class UnknownRetentionClass(ArchiveError):
    """A retention class name that the configuration does not define."""

    field = "retention_class"


class InvalidRetentionConfig(ArchiveError):
    """The retention configuration is malformed."""


class LegalHoldRefused(ArchiveError):
    """A legal hold change the rules forbid (for example lifting a permanent record's hold)."""


class MissingReason(ArchiveError):
    """A legal hold change came without a reason."""

    field = "reason"


class FixityFailed(ArchiveError):
    """The stored bytes no longer match the recorded SHA-256 (or the object vanished or changed version)."""

    def __init__(self, record_id: str, detail: str) -> None:
        super().__init__(detail)
        self.record_id = record_id


class ChecksumMismatch(ArchiveError):
    """Bytes copied from staging do not match the SHA-256 the event announced."""
