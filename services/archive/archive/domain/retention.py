"""Retention classes (thời hạn bảo quản) and the retain-until date each one gives a record."""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from archive.domain.errors import InvalidRetentionConfig, UnknownRetentionClass

PERMANENT = "vinh_vien"


@dataclass(frozen=True)
class RetentionClass:
    """One class: a number of years, or permanent (vĩnh viễn)."""

    name: str
    years: int | None  # None: permanent

    @property
    def permanent(self) -> bool:
        return self.years is None


@dataclass(frozen=True)
class RetentionDecision:
    """What a record gets: its class and the lock's retain-until instant (a legal hold is an admin's act)."""

    retention_class: str
    retain_until: datetime


def normalise_type_name(name: str) -> str:
    """Folds a document type name ("Công văn", "cong van", "CÔNG VĂN") to one lookup key."""
    folded = unicodedata.normalize("NFD", name.replace("Đ", "D").replace("đ", "d"))
    stripped = "".join(ch for ch in folded if unicodedata.category(ch) != "Mn")
    return " ".join(stripped.lower().split())


def add_years(moment: datetime, years: int) -> datetime:
    """Adds calendar years; 29 February falls back to 28 February in non-leap years."""
    try:
        return moment.replace(year=moment.year + years)
    except ValueError:
        return moment.replace(year=moment.year + years, day=28)


@dataclass(frozen=True)
class RetentionPolicy:
    """The configured classes, the default class per document type and the fallback class."""

    classes: Mapping[str, RetentionClass]
    default_class: str
    by_document_type: Mapping[str, str] = field(default_factory=dict)
    report_class: str | None = None
    # The longest class a document gets on its declared type alone; longer ones need a valid signature.
    unsigned_max_class: str | None = None
    # How long a permanent (vĩnh viễn) record is locked; None: the longest finite class.
    permanent_lock_years: int | None = None

    def __post_init__(self) -> None:
        if not self.classes:
            raise InvalidRetentionConfig("retention: at least one class is required")
        named = [self.default_class, *self.by_document_type.values()]
        if self.report_class is not None:
            named.append(self.report_class)
        if self.unsigned_max_class is not None:
            named.append(self.unsigned_max_class)
        for name in named:
            if name not in self.classes:
                raise InvalidRetentionConfig(f"retention: class {name!r} is used but not defined")

    @classmethod
    def from_mapping(cls, data: Mapping[str, object]) -> RetentionPolicy:
        """Builds the policy from the parsed YAML document (see archive/data/retention.yaml)."""
        raw_classes = data.get("classes")
        if not isinstance(raw_classes, Mapping) or not raw_classes:
            raise InvalidRetentionConfig("retention: 'classes' must be a non-empty mapping")
        classes: dict[str, RetentionClass] = {}
        for raw_name, raw_years in raw_classes.items():
            name = str(raw_name)
            if raw_years in (None, "permanent", PERMANENT):
                classes[name] = RetentionClass(name, None)
            elif isinstance(raw_years, int) and not isinstance(raw_years, bool) and raw_years > 0:
                classes[name] = RetentionClass(name, raw_years)
            else:
                raise InvalidRetentionConfig(f"retention: class {name!r} needs a positive number of years")
        types = data.get("document_types") or {}
        if not isinstance(types, Mapping):
            raise InvalidRetentionConfig("retention: 'document_types' must be a mapping")
        report = data.get("report_class")
        unsigned = data.get("unsigned_max_class")
        lock_years = data.get("permanent_lock_years")
        if lock_years is not None and (
            not isinstance(lock_years, int) or isinstance(lock_years, bool) or lock_years <= 0
        ):
            raise InvalidRetentionConfig(
                "retention: 'permanent_lock_years' must be a positive number of years"
            )
        return cls(
            classes=classes,
            default_class=str(data.get("default_class", "")),
            by_document_type={normalise_type_name(str(k)): str(v) for k, v in types.items()},
            report_class=None if report is None else str(report),
            unsigned_max_class=None if unsigned is None else str(unsigned),
            permanent_lock_years=lock_years,
        )

    @property
    def longest_years(self) -> int:
        """The longest finite retention; permanent records are locked this long unless configured."""
        finite = [c.years for c in self.classes.values() if c.years is not None]
        return max(finite) if finite else 100

    def class_for(self, document_type: str | None, *, is_report: bool = False) -> str:
        """The default class of a document type, else the report or the general default."""
        if is_report and self.report_class is not None:
            return self.report_class
        if document_type:
            found = self.by_document_type.get(normalise_type_name(document_type))
            if found is not None:
                return found
        return self.default_class

    def _years(self, class_name: str) -> float:
        klass = self.classes.get(class_name)
        if klass is None:
            raise UnknownRetentionClass(f"unknown retention class {class_name!r}")
        return float("inf") if klass.years is None else float(klass.years)

    def grant(self, claimed: str, *, signature_valid: bool) -> str:
        """The class a document gets: the one its declared type asks for, but no longer than
        `unsigned_max_class` (default: the default class) unless its signature is valid and trusted.

        The document type is the sender's word; a class longer than the organisation's ordinary one locks
        storage for decades, so it needs the document's proof of origin."""
        cap = self.unsigned_max_class or self.default_class
        if signature_valid or self._years(claimed) <= self._years(cap):
            return claimed
        return cap

    def decide(self, class_name: str, archived_at: datetime) -> RetentionDecision:
        """Retain-until for a record of this class archived at that instant."""
        klass = self.classes.get(class_name)
        if klass is None:
            raise UnknownRetentionClass(f"unknown retention class {class_name!r}")
        years = klass.years if klass.years is not None else (self.permanent_lock_years or self.longest_years)
        return RetentionDecision(retention_class=klass.name, retain_until=add_years(archived_at, years))
