"""Match operators over Vietnamese text: case- and diacritics-insensitive where the operator says so."""

import pytest
from routing.domain.matching import Condition, FieldMatch, InvalidPattern
from routing.domain.text import fold, words

SUBJECT = "Triển khai Tháng hành động vì An toàn Thực phẩm năm 2021"


def test_fold_strips_diacritics_and_d_bar():
    assert fold("Đồng Xoài, ĐỒNG PHÚ") == "dong xoai, dong phu"
    assert words("V/v phối hợp, hỗ trợ i-Speed") == ["v", "v", "phoi", "hop", "ho", "tro", "i-speed"]


def test_fold_handles_decomposed_input():
    decomposed = "an toa\u0300n thu\u031b\u0323c pha\u0302\u0309m"
    assert fold(decomposed) == "an toan thuc pham"


def test_any_matches_without_diacritics_or_case():
    cond = Condition.build("any", ["an toan thuc pham", "ngộ độc"])
    assert cond.evaluate(SUBJECT)
    assert not Condition.build("any", ["ngộ độc"]).evaluate(SUBJECT)


def test_any_matches_whole_words_only():
    assert Condition.build("any", ["toan"]).evaluate("Tuyên truyền toàn dân")
    assert Condition.build("any", ["thuc"]).evaluate("thực phẩm")
    assert not Condition.build("any", ["pha"]).evaluate("thực phẩm")


def test_all_needs_every_phrase():
    assert Condition.build("all", ["tháng hành động", "AN TOÀN THỰC PHẨM"]).evaluate(SUBJECT)
    assert not Condition.build("all", ["tháng hành động", "tham nhũng"]).evaluate(SUBJECT)


def test_phrase_words_must_be_consecutive():
    assert not Condition.build("any", ["an thuc"]).evaluate(SUBJECT)


def test_exact_compares_the_whole_value_with_diacritics():
    cond = Condition.build("exact", ["Cục Viễn thông"])
    assert cond.evaluate("Cục  Viễn thông ")
    assert not cond.evaluate("Cuc Vien thong")
    assert not cond.evaluate("Cục Viễn thông Việt Nam")


def test_exact_accepts_decomposed_text():
    assert Condition.build("exact", ["Kế hoạch"]).evaluate("Ke\u0302\u0301 hoa\u0323ch")


def test_regex_searches_nfc_text_with_d_bar():
    cond = Condition.build("regex", ["^KH-BCĐ$"])
    assert cond.evaluate("KH-BCĐ")
    assert not cond.evaluate("KH-BCD")
    assert not cond.evaluate("QĐ-UBND")


def test_bad_regex_raises():
    with pytest.raises(InvalidPattern):
        Condition.build("regex", ["(unclosed"])


def test_regex_runs_on_a_linear_time_engine():
    # Python's backtracking engine needs seconds for 28 characters here and doubles every character more;
    # RE2 answers 100,000 at once (a backtracking engine would never finish inside the test's timeout).
    cond = Condition.build("regex", ["^(a+)+$"])
    assert type(cond.patterns[0]).__module__.startswith("re2")
    assert not cond.evaluate("a" * 28 + "!")
    assert not cond.evaluate("a" * 100_000 + "!")
    assert cond.evaluate("a" * 100_000)


@pytest.mark.parametrize(
    "pattern",
    [r"(a)\1", r"(?=x)y", r"(?<!x)y", "x" * 301, "(((a{500}){500}){500})"],
    ids=["backreference", "lookahead", "lookbehind", "too-long", "too-large"],
)
def test_patterns_a_linear_engine_cannot_run_are_refused(pattern):
    with pytest.raises(InvalidPattern):
        Condition.build("regex", [pattern])


def test_vietnamese_regex_keeps_its_meaning_under_re2():
    cond = Condition.build("regex", ["(?i)ngộ độc|^KH-BCĐ$"])
    assert cond.evaluate("Phòng chống NGỘ ĐỘC thực phẩm") and cond.evaluate("KH-BCĐ")
    assert not cond.evaluate("KH-BCD")


def test_fuzzy_tolerates_small_misspellings_and_missing_accents():
    cond = Condition.build("fuzzy", ["phòng chống tham nhũng"])
    assert cond.evaluate("Giải báo chí về phòng, chống tham nhũn, lãng phí")
    assert cond.evaluate("phong chong tham nhung")
    assert not cond.evaluate("Tháng hành động vì an toàn thực phẩm")


def test_fuzzy_issuer_name_with_typo():
    assert Condition.build("fuzzy", ["Cục Viễn thông"]).evaluate("Cuc Vien thôngg")
    assert not Condition.build("fuzzy", ["Cục Viễn thông"]).evaluate("Cục Tần số")


def test_field_match_needs_all_conditions_on_some_value():
    fm = FieldMatch("issuer", (Condition.build("any", ["viễn thông"]), Condition.build("any", ["cục"])))
    assert fm.evaluate(["Cục Viễn thông", "000.00.00.G22"])
    assert not fm.evaluate(["", ""])
    code_only = FieldMatch("issuer", (Condition.build("exact", ["000.00.00.G22"]),))
    assert code_only.evaluate(["Cục Viễn thông", "000.00.00.G22"])


def test_unknown_operator_is_refused():
    with pytest.raises(ValueError, match="unknown operator"):
        Condition.build("like", ["x"])
