"""Reading concepts and other places out of a message (policy_kb/concepts.py, places.py): longest
match first, this county's own names never taken for another place, dialect spellings found."""
import pytest

from xnh.handlers.normalize import normalize
from xnh.policy_kb import concepts


@pytest.mark.parametrize("text, present, absent, areas", [
    ("新農合報銷比例", {"scheme:ncms", "attr:rate"}, set(), ()),
    ("医疗保险个人交一年多少钱", {"scheme:generic", "action:pay"}, {"scheme:urban"}, ()),
    ("城镇居民医保交多少", {"scheme:urban"}, {"scheme:ncms"}, ()),
    ("养老保险交100元", {"scheme:pension"}, {"group:elderly"}, ()),  # 养老保险 is not 老人
    ("合作医疗省外能报多少", {"place:out_province", "place:outside"}, set(), ()),
    ("在外省医院住院", {"place:out_province"}, {"place:city_province"}, ()),  # not 省医院
    ("异地就医和本地比例相同吗", {"place:outside", "place:local", "attr:compare"}, set(), ()),
    ("啥人能多报", {"attr:who", "attr:bonus"}, set(), ()),  # dialect spelling of 什么人
    ("四川农村医保报销比例", {"scheme:ncms"}, set(), ("四川",)),
    ("曹县人民医院住院", {"care:inpatient"}, {"place:county"}, ("曹县",)),  # 曹县, not 县人民医院
    # negative rows: this county and everyday words are no other place
    ("示范县人民医院住院", {"place:county"}, set(), ()),  # not 范县
    ("五保户县医院住院5000", {"group:wubao", "place:county"}, set(), ()),  # not 户县
    ("东山镇卫生院", {"place:township"}, set(), ()),
    ("朝阳的时候去县医院", {"place:county"}, set(), ()),
    ("", set(), set(), ()),
])
def test_concepts_and_places(text, present, absent, areas):
    found = concepts.find(normalize(text))
    assert present <= found.concepts, found.concepts
    assert not absent & found.concepts, found.concepts
    assert found.areas == areas


def test_an_implied_concept_is_not_evidence_of_its_own():
    found = concepts.find("省外")
    assert "place:outside" in found.concepts and "place:outside" in found.implied
    assert "place:out_province" not in found.implied


def test_every_lexicon_word_names_known_concepts():
    labels = concepts.labels()
    assert all(key in labels for keys in concepts.lexicon().values() for key in keys)
