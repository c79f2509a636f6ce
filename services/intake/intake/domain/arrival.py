"""Arrival numbering rule (số đến): 1, 2, 3… per receiving organisation per calendar year in Vietnam time."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

try:
    BUSINESS_TZ: timezone | ZoneInfo = ZoneInfo("Asia/Ho_Chi_Minh")
except ZoneInfoNotFoundError:  # pragma: no cover - without tz data; Vietnam has had no DST since 1975
    BUSINESS_TZ = timezone(timedelta(hours=7), "ICT")


@dataclass(frozen=True)
class ArrivalSeries:
    """The counter a number is drawn from: one per organisation and calendar year of arrival."""

    organisation: str
    year: int


def arrival_date(received_at: datetime) -> date:
    """The business-calendar day a document arrived on (a 23:30 UTC arrival is the next day in Hà Nội)."""
    if received_at.tzinfo is None:
        raise ValueError("received_at must be timezone-aware")
    return received_at.astimezone(BUSINESS_TZ).date()


def arrival_series(organisation: str, received_at: datetime) -> ArrivalSeries:
    return ArrivalSeries(organisation=organisation, year=arrival_date(received_at).year)


def next_arrival_number(last: int | None) -> int:
    """Numbers restart at 1 in each series and never skip: the next is always last + 1."""
    return 1 if last is None else last + 1
