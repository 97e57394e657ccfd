"""Masking and phone normalisation (SPEC privacy rules) and ID numbers (GB 11643)."""
import datetime as dt

import pytest

from xnh import idnumber
from xnh.privacy import mask_id, mask_name, mask_phone, normalize_phone


@pytest.mark.parametrize("raw, phone", [
    ("+86 138-0000-9001", "13800009001"), ("8613800009001", "13800009001"), ("008613800009001", "13800009001"),
    ("13800009001", "13800009001"), ("(138) 0000 9001", "13800009001"),
    ("+15005550006", "+15005550006"),  # negative: a US number is not 150-0555-0006 in China
    ("", ""), (None, ""),
])
def test_normalize_phone(raw, phone):
    assert normalize_phone(raw) == phone


@pytest.mark.parametrize("name, masked", [("张三", "张*"), ("张小三", "张*三"), ("欧阳小明", "欧**明"), ("张", "张"), ("", "*")])
def test_mask_name(name, masked):
    assert mask_name(name) == masked


@pytest.mark.parametrize("number, masked", [("52990119560808001X", "5299**********001X"), ("1234567", "*******")])
def test_mask_id(number, masked):
    assert mask_id(number) == masked


@pytest.mark.parametrize("phone, masked", [("13812345678", "138****5678"), ("+86 138 1234 5678", "138****5678"), ("123", "***")])
def test_mask_phone(phone, masked):
    assert mask_phone(phone) == masked


@pytest.mark.parametrize("number, valid", [
    ("52990119560808001X", True), ("52990119560808001x", True), ("529901196811300027", True),
    ("529901195608080011", False),  # check digit
    ("529901195613400019", False),  # month 13
    ("5299011956080800", False),  # too short
    ("52990130000101001X", False),  # born in the future
])
def test_id_number_check_digit_and_birth_date(number, valid):
    assert idnumber.is_valid(number) is valid


def test_age_from_the_id_number():
    assert idnumber.age_on("52990119560808001X", dt.date(2026, 6, 15)) == 69
    assert idnumber.age_on("52990119560808001X", dt.date(2026, 8, 8)) == 70
    assert idnumber.age_on("bad", dt.date(2026, 8, 8)) is None
