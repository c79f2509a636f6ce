"""The working-day calendar: Monday to Friday less public holidays, in Asia/Ho_Chi_Minh."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

TZ = ZoneInfo("Asia/Ho_Chi_Minh")
# A deadline day lasts until the end of that day, local time.
END_OF_DAY = time(23, 59, 59)


@dataclass(frozen=True)
class WorkingCalendar:
    """Holidays come from data (see routing/data/holidays-vn.yaml), never from code."""

    holidays: frozenset[date] = frozenset()
    # Announced make-up Saturdays (ngày làm bù) count as working days.
    extra_working_days: frozenset[date] = frozenset()

    @classmethod
    def from_mapping(cls, doc: Mapping[str, object]) -> WorkingCalendar:
        """Reads `{holidays: [{date, name}...] | [date...], working_days: [...]}`."""
        return cls(frozenset(_dates(doc.get("holidays"))), frozenset(_dates(doc.get("working_days"))))

    def is_working_day(self, day: date) -> bool:
        if day in self.extra_working_days:
            return True
        return day.weekday() < 5 and day not in self.holidays

    def next_working_day(self, day: date) -> date:
        """The day itself when it is a working day, else the next one."""
        while not self.is_working_day(day):
            day += timedelta(days=1)
        return day

    def add_working_days(self, start: date, days: int) -> date:
        """`days` working days after `start`; 0 means the same day (or the next working one)."""
        if days < 0:
            raise ValueError("days must not be negative")
        current = self.next_working_day(start)
        remaining = days
        while remaining:
            current += timedelta(days=1)
            if self.is_working_day(current):
                remaining -= 1
        return current


def end_of_day(day: date) -> datetime:
    """The moment a deadline on `day` passes: 23:59:59 Asia/Ho_Chi_Minh."""
    return datetime.combine(day, END_OF_DAY, tzinfo=TZ)


def local_date(moment: datetime) -> date:
    return moment.astimezone(TZ).date()


def _dates(raw: object) -> Iterable[date]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise ValueError("holidays must be a list")
    out: list[date] = []
    for item in raw:
        value = item.get("date") if isinstance(item, Mapping) else item
        if isinstance(value, date):
            out.append(value)
        elif isinstance(value, str):
            out.append(date.fromisoformat(value))
        else:
            raise ValueError(f"not a date: {value!r}")
    return out
