"""register_directive with a fake staging area: what is staged, what is cleaned up, what reaches the DB."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from intake.adapters.db import make_engine
from intake.adapters.repository import DirectiveRepository
from intake.domain.errors import AttachmentTooLarge, InvalidAttachment
from intake.domain.models import new_metadata
from intake.handlers import Submission, Upload, register_directive
from intake_testing import migrate_url, minimal_pdf
from shared.objectstore.port import ChecksumMismatch, StoreUnavailable


class FakeStaging:
    """Records puts and discards; can fail on the n-th put."""

    bucket = "staging"

    def __init__(self, fail_on: int | None = None, error: Exception | None = None) -> None:
        self.fail_on = fail_on
        self.error = error or StoreUnavailable("connection refused")
        self.puts: list[str] = []
        self.discarded: list[str] = []

    def put(self, key: str, data: bytes, *, content_type: str, sha256: str) -> None:
        if self.fail_on is not None and len(self.puts) + 1 == self.fail_on:
            raise self.error
        self.puts.append(key)

    def discard(self, keys: list[str]) -> None:
        self.discarded.extend(keys)


@pytest.fixture
def repository(tmp_path: Path) -> DirectiveRepository:
    url = f"sqlite:///{tmp_path / 'intake.db'}"
    migrate_url(url)
    return DirectiveRepository(make_engine(url))


def submission(*uploads: Upload) -> Submission:
    metadata = new_metadata(
        issuer_name="Cục Viễn thông",
        number="1393/CVT-CL",
        issued_date=date(2021, 4, 8),
        subject="V/v i-Speed",
    )
    return Submission(metadata=metadata, raw_metadata="{}", uploads=uploads, submitted_by="s")


def pdf_upload(index: int, text: str) -> Upload:
    return Upload(
        field=f"files[{index}]",
        filename=f"{text}.pdf",
        content_type="application/pdf",
        data=minimal_pdf(text),
    )


def register(sub: Submission, repository: DirectiveRepository, staging: FakeStaging, max_bytes: int = 10_000):
    return register_directive(
        sub,
        repository=repository,
        staging=staging,  # type: ignore[arg-type]
        organisation="STTTT",
        max_upload_bytes=max_bytes,
        clock=lambda: datetime(2026, 1, 2, tzinfo=UTC),
        new_id=iter(f"id-{i}" for i in range(100)).__next__,
    )


def test_files_are_staged_under_directive_id_and_sha256_before_the_row(
    repository: DirectiveRepository,
) -> None:
    staging = FakeStaging()
    registration = register(submission(pdf_upload(0, "a"), pdf_upload(1, "b")), repository, staging)
    directive = registration.directive
    assert registration.created
    assert [a.key for a in directive.attachments] == staging.puts
    assert all(key.startswith("directives/id-0/") for key in staging.puts)
    assert staging.discarded == []
    assert repository.get("id-0") == directive


def test_identical_files_in_one_submission_are_stored_once(repository: DirectiveRepository) -> None:
    staging = FakeStaging()
    directive = register(
        submission(pdf_upload(0, "same"), pdf_upload(1, "same")), repository, staging
    ).directive
    assert len(staging.puts) == 1
    assert len(directive.attachments) == 2


@pytest.mark.parametrize("error", [StoreUnavailable("down"), ChecksumMismatch("bit rot")])
def test_a_failure_mid_staging_removes_what_was_staged(
    repository: DirectiveRepository, error: Exception
) -> None:
    staging = FakeStaging(fail_on=2, error=error)
    with pytest.raises(StoreUnavailable):
        register(submission(pdf_upload(0, "a"), pdf_upload(1, "b")), repository, staging)
    assert staging.discarded == staging.puts and len(staging.puts) == 1
    assert repository.count() == 0


def test_bad_files_are_refused_before_anything_is_staged(repository: DirectiveRepository) -> None:
    staging = FakeStaging()
    fake = Upload(field="files[1]", filename="x.pdf", content_type="application/pdf", data=b"GIF89a")
    with pytest.raises(InvalidAttachment):
        register(submission(pdf_upload(0, "a"), fake), repository, staging)
    with pytest.raises(AttachmentTooLarge):
        register(submission(pdf_upload(0, "a")), repository, staging, max_bytes=10)
    assert staging.puts == []
    assert repository.count() == 0


def test_a_key_whose_first_request_commits_between_the_lookups_is_a_replay(
    repository: DirectiveRepository,
) -> None:
    # The idempotency look-up misses, then the first request with the key commits, then the duplicate
    # look-up finds its document: the answer is that first registration again, not a 409.
    keyed = Submission(
        metadata=submission().metadata,
        raw_metadata='{"n": 1}',
        uploads=(),
        submitted_by="s",
        idempotency_key="k-1",
    )
    first = register(keyed, repository, FakeStaging()).directive
    real_find = repository.find_idempotent
    misses = iter([None])

    def find_idempotent(owner: str, key: str):  # type: ignore[no-untyped-def]
        return next(misses, None) or real_find(owner, key)

    repository.find_idempotent = find_idempotent  # type: ignore[method-assign]
    again = register(keyed, repository, FakeStaging())
    assert not again.created
    assert again.directive == first
    assert repository.count() == 1
