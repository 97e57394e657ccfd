"""Hospital names in a message matched against policy_kb/hospitals.toml (xnh.policy_kb.hospitals)."""
import pytest

from xnh.handlers.normalize import normalize
from xnh.policy_kb import hospitals


@pytest.mark.parametrize("text, name, level", [
    ("在示范县人民医院住院", "示范县人民医院", "county"),
    ("示范县仁艾医院住院3000", "示范县仁爱医院", "county"),  # typo
    ("在县仁爱医院住的", "示范县仁爱医院", "county"),  # own county before a listed name
    ("在我们县仁爱医院", "示范县仁爱医院", "county"),
    ("县人医住院", "示范县人民医院", "county"),  # alias without 医院
    ("县中医院住院", "示范县中医院", "county"),
    ("在縣中醫院住院", "示范县中医院", "county"),
    ("南平乡卫生院住院3000", "南坪乡卫生院", "township"),  # typo
    ("在北岭卫生院住院", "北岭镇中心卫生院", "township"),
    ("在东山镇医院", "东山镇卫生院", "township"),
    ("省人明医院住院3000", "省人民医院", "province"),  # typo
    ("我在省人医", "省人民医院", "province"),
    ("在医学院附院住院", "医学院附属医院", "province"),
    ("在医学院附属医院住院", "医学院附属医院", "province"),
    ("市第一人民医院", "市第一人民医院", "city_province"),
    ("在市一院住院", "市第一人民医院", "city_province"),
    ("在市中医住的", "市中医院", "city_province"),
    ("在康宁医院住院", "市康宁医院", "outside_private"),
])
def test_listed_hospitals(text, name, level):
    m = hospitals.find(normalize(text))
    assert m is not None and m.hospital is not None
    assert (m.hospital.name, m.hospital.level) == (name, level)


@pytest.mark.parametrize("text, written", [
    ("广州市白云区人民医院住院3000", "广州市白云区人民医院"),
    ("广东省人民医院住院3000", "广东省人民医院"),  # NOT 省人民医院
    ("广州市第一人民医院住院", "广州市第一人民医院"),  # NOT 市第一人民医院
    ("贵阳市中医院住院", "贵阳市中医院"),
])
def test_unlisted_hospital_with_a_place_is_outside_the_county(text, written):
    m = hospitals.find(normalize(text))
    assert m is not None and m.hospital is None and m.text == written


@pytest.mark.parametrize("text", [
    "县医院住院3000",  # a level word, not a name
    "乡镇卫生院",
    "在医院住了三天",
    "住院花了3000",
    "",
    "在广东省人医住院",  # not this county's 省人医
    "我爸在县城医院住院",  # 城 (cheng) does not sound like 省 (sheng): not 省医院
    "在诚医院住院",
])
def test_no_listed_hospital(text):
    m = hospitals.find(normalize(text))
    assert m is None or m.hospital is None


def test_every_listed_name_and_alias_finds_itself():
    for form, h in hospitals.hospitals():
        m = hospitals.find(f"在{form}住院")
        assert m is not None and m.hospital == h, form
