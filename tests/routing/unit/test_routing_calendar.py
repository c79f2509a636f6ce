"""Working days: Monday to Friday, public holidays from the packaged data, Asia/Ho_Chi_Minh deadlines."""

from datetime import UTC, date, datetime
from importlib.resources import files

import pytest
import yaml
from routing.domain.calendar import WorkingCalendar, end_of_day, local_date


@pytest.fixture(scope="module")
def vn() -> WorkingCalendar:
    text = files("routing").joinpath("data/holidays-vn.yaml").read_text(encoding="utf-8")
    return WorkingCalendar.from_mapping(yaml.safe_load(text))


def test_weekends_are_skipped():
    cal = WorkingCalendar()
    assert cal.add_working_days(date(2021, 4, 16), 1) == date(2021, 4, 19)  # Fri → Mon
    assert cal.add_working_days(date(2021, 4, 17), 0) == date(2021, 4, 19)  # Sat, same day → Mon
    assert cal.add_working_days(date(2021, 4, 13), 10) == date(2021, 4, 27)


def test_reunification_and_labour_day_move_deadlines(vn):
    # 2021: 30/4 Fri, 1/5 Sat, substitute Mon 3/5.
    assert vn.add_working_days(date(2021, 4, 29), 1) == date(2021, 5, 4)


def test_tet_moves_deadlines_past_the_holiday(vn):
    # Tết 2024: 8–14 Feb; arrival Wed 7 Feb, 1 working day later is Thu 15 Feb.
    assert vn.add_working_days(date(2024, 2, 7), 1) == date(2024, 2, 15)
    assert not vn.is_working_day(date(2025, 1, 29))


def test_hung_kings_and_national_day_are_holidays(vn):
    assert not vn.is_working_day(date(2021, 4, 21))  # Giỗ Tổ 10/3 âm lịch
    assert not vn.is_working_day(date(2025, 9, 2)) and not vn.is_working_day(date(2025, 9, 1))
    assert vn.is_working_day(date(2025, 9, 3))


def test_make_up_saturday_counts_as_working_day(vn):
    assert vn.is_working_day(date(2024, 5, 4))


def test_every_year_2021_to_2027_has_data(vn):
    for year in range(2021, 2028):
        assert date(year, 1, 1) in vn.holidays
        assert date(year, 9, 2) in vn.holidays
        assert sum(1 for d in vn.holidays if d.year == year and d.month in (1, 2) and d.day != 1) >= 5


def test_deadline_ends_local_day():
    due = end_of_day(date(2021, 5, 15))
    assert due.utcoffset().total_seconds() == 7 * 3600
    assert local_date(datetime(2021, 5, 15, 18, 0, tzinfo=UTC)) == date(2021, 5, 16)


def test_negative_days_refused():
    with pytest.raises(ValueError):
        WorkingCalendar().add_working_days(date(2021, 1, 4), -1)
