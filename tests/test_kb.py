"""The Q&A knowledge base: every topic loads, renders within the SMS limit, matches its own
canonical question, takes its numbers from the scheme data, and hard-codes no evaluation sentence."""
import dataclasses
import datetime as dt
import json
import re

import pytest

from xnh.handlers.normalize import normalize
from xnh.policy_kb import qa, understand
from xnh.policy_kb.loader import KBError
from tests.conftest import shared_file


DAY = dt.date(2026, 6, 15)
TOPICS = qa.topics()

REQUIRED_AREAS = [  # (what the issue asks to cover, a topic id that covers it)
    ("rates per level", "rate_county"), ("deductible", "deductible"), ("yearly cap", "inpatient_cap"),
    ("outpatient", "outpatient_cap"), ("special groups", "special_groups"), ("contribution", "contribution"),
    ("collection dates", "collection_dates"), ("whole household", "whole_household"),
    ("五保/低保", "wubao_dibao_pay"), ("newborns", "newborn"), ("who may enrol", "who_can_enroll"),
    ("documents", "claim_documents"), ("out of county", "out_of_county"), ("referral", "referral"),
    ("direct settlement", "direct_settlement"), ("not covered", "not_covered"), ("accidents", "accident"),
    ("third parties", "third_party"), ("chronic disease", "chronic_disease"), ("大病二次补偿", "serious_illness"),
    ("公示", "public_notice"), ("urban scheme", "urban_what"), ("urban contributions", "urban_contribution"),
    ("urban waiting rule", "urban_waiting"), ("what 新农合 is", "what_is_ncms"), ("fraud", "fraud_report"),
    ("查参合", "check_enrollment_howto"), ("查报销", "check_claim_howto"), ("退订", "unsubscribe_howto"),
]


def test_at_least_sixty_topics_with_unique_ids():
    assert len(TOPICS) >= 60
    assert len({t.id for t in TOPICS}) == len(TOPICS)


@pytest.mark.parametrize("area,topic_id", REQUIRED_AREAS)
def test_required_area_is_covered(area, topic_id):
    assert qa.by_id(topic_id).sms


def test_unknown_id_raises():
    with pytest.raises(KeyError):
        qa.by_id("no_such_topic")


@pytest.mark.parametrize("topic", TOPICS, ids=lambda t: t.id)
def test_topic_walk(topic):
    """Both answers render with today's scheme, the SMS fits, the topic has its paraphrases and
    held-out questions, and its canonical question ranks it first."""
    sms = qa.render_answer(topic.sms, DAY)
    telegram = qa.render_answer(topic.telegram, DAY)
    assert 0 < len(sms) <= qa.SMS_LIMIT
    assert telegram and "{{" not in sms + telegram
    assert len(topic.paraphrases) >= 6 and len(topic.heldout) >= 2
    assert not set(map(normalize, topic.heldout)) & set(map(normalize, topic.paraphrases))
    assert topic.source.strip()
    ranked = understand.rank(normalize(topic.question))
    assert ranked[0][1] == topic.id, ranked[:3]


def test_demo_rules_say_so_in_their_source():
    for topic_id in ("outpatient_cap", "special_groups", "claim_documents", "third_party", "urban_rates"):
        assert "demo rule" in qa.by_id(topic_id).source


def test_serious_illness_answer_has_no_amounts():
    t = qa.by_id("serious_illness")
    assert not re.search(r"\d", qa.render_answer(t.sms, DAY) + qa.render_answer(t.telegram, DAY))


@pytest.mark.parametrize("topic_id,variable,expected", [
    ("outpatient_cap", "ncms.op_cap", "150"),
    ("inpatient_cap", "ncms.cap", "60000"),
    ("contribution", "ncms.per_person", "30"),
    ("rate_county", "ncms.rate.county", "70%"),
    ("urban_student", "urban.student_child", "20"),
])
def test_numbers_come_from_the_scheme(topic_id, variable, expected):
    t = qa.by_id(topic_id)
    assert "{{ " + variable + " }}" in t.sms
    assert expected in qa.render_answer(t.sms, DAY)


def test_an_earlier_scheme_changes_the_answer():
    """Answers follow the scheme in force: in 2009 the county rate was 60%, the cap 30000."""
    t = qa.by_id("rate_county")
    assert "60%" in qa.render_answer(t.sms, dt.date(2009, 6, 1))
    assert "30000" in qa.render_answer(qa.by_id("inpatient_cap").sms, dt.date(2009, 6, 1))


@pytest.mark.parametrize("change,message", [
    ({"sms": "很长" * 80}, "over 134"),
    ({"sms": "{{ ncms.no_such_number }}"}, "does not render"),
])
def test_validation_rejects_bad_answers(change, message):
    bad = dataclasses.replace(TOPICS[0], **change)
    with pytest.raises(KBError, match=message):
        qa.validate_answers([bad], DAY)


def test_validation_accepts_the_shipped_topics():
    qa.validate_answers(TOPICS, DAY)


def test_no_dev_case_sentence_is_in_the_kb():
    path = shared_file("eval/dev_cases.json")
    sentences = {re.sub(r"\W", "", normalize(t)) for c in json.loads(path.read_text("utf-8"))
                 for t in c["turns"] if len(t) > 5}
    for t in TOPICS:
        for text in (t.question, *t.paraphrases, *t.heldout):
            assert re.sub(r"\W", "", normalize(text)) not in sentences, (t.id, text)
