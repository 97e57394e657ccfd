"""查参合 / 查报销 and identity checks through respond(): the right household, masked, nothing of
anyone else's; the generic answer for a wrong name or unknown ID; the daily limit on tries."""
import pytest

@pytest.mark.parametrize("text, sender, present, absent", [
    ("查报销", "13800009001", ["已拨付", "35000", "3月1日", "一卡通", "已受理", "杨*林", "杨*花"],
     ["杨树林", "杨春花", "田", "罗"]),
    ("报销到哪一步了", "+86 138-0000-9001", ["已拨付", "已受理"], ["杨树林"]),
    ("钱打到卡上了吗", "8613800009011", ["已拨付", "已受理"], ["杨春花"]),
    ("报销款发了没有", "13800009002", ["审核通过", "1800", "田*珍"], ["杨", "罗", "田玉珍"]),
    ("查报销", "13800009003", ["未通过", "缺少转诊证明", "转诊证明", "合管办"], ["罗永福", "2025", "杨"]),
    # negative rows: an unregistered phone sees nothing, and is asked to prove identity
    ("查报销", "13700000041", ["身份证"], ["已拨付", "杨", "田", "罗"]),
    ("查参合", "13700000041", ["身份证"], ["已参合", "杨"]),
])
def test_personal_lookups_show_only_the_senders_household(county, ask, text, sender, present, absent):
    reply = ask(text, sender=sender)
    for word in present:
        assert word in reply.text, (word, reply.text)
    for word in absent:
        assert word not in reply.text, (word, reply.text)


@pytest.mark.parametrize("text, sender, present, absent", [
    ("查参合", "13800009001", ["已参合", "杨*林", "杨*花", "30"], ["杨树林", "未缴费"]),
    ("今年参合了吗", "13800009003", ["未缴费", "30", "11月1日", "12月30日"], ["罗永福", "已参合"]),
    ("我在深圳打工,家里给我交了合作医疗没有", "13800009011", ["已参合"], ["杨春花"]),
    ("交钱了没有", "13800009002", ["已参合", "民政"], ["田玉珍"]),
])
def test_enrollment(county, ask, text, sender, present, absent):
    reply = ask(text, sender=sender)
    assert reply.intent == "enrollment"
    for word in present:
        assert word in reply.text, (word, reply.text)
    for word in absent:
        assert word not in reply.text, (word, reply.text)


@pytest.mark.parametrize("today, present, absent", [
    ("2026-06-15", ["2025年11月12日交30元"], ["2027年的还没交", "正在收"]),  # outside the collection window
    ("2026-11-15", ["2025年11月12日交30元", "2027年的还没交", "正在收", "12月30日"], []),
    ("2026-12-31", ["2025年11月12日交30元"], ["2027年的还没交"]),  # the window has closed
])
def test_enrollment_dates_carry_their_year_and_the_window_says_whether_next_year_is_paid(
        county, ask, monkeypatch, today, present, absent):
    monkeypatch.setenv("XNH_TODAY", today)
    reply = ask("查参合", sender="13800009001")
    for word in present:
        assert word in reply.text, (word, reply.text)
    for word in absent:
        assert word not in reply.text, (word, reply.text)


def test_identity_unlocks_the_household_and_masks_it(county, ask):
    first = ask("查报销", sender="13700000042")
    assert "身份证" in first.text
    reply = ask("查询 52990119560808001X 杨树林", sender="13700000042")
    assert reply.intent == "claim_status"
    assert "已拨付" in reply.text and "杨*林" in reply.text
    assert "杨树林" not in reply.text and "52990119560808001X" not in reply.text
    # the session lasts: 查参合 right after works without asking again
    assert "已参合" in ask("查参合", sender="13700000042").text


def test_verification_remembers_what_was_asked(county, ask):
    ask("查参合", sender="13700000050")
    reply = ask("查询 罗永福 529901198306060017", sender="13700000050")
    assert reply.intent == "enrollment" and "未缴费" in reply.text


@pytest.mark.parametrize("text", [
    "查询 52990119560808001X 王五",       # right ID, wrong name
    "查询 529901199001010013 杨树林",     # valid check digit, unknown ID
])
def test_wrong_name_and_unknown_id_get_the_same_answer(county, ask, text):
    reply = ask(text, sender="13700000043")
    same = ask("查询 529901199001010013 杨树林", sender="13700000044")
    assert reply.text == same.text
    assert "已拨付" not in reply.text and "杨" not in reply.text


def test_bad_check_digit_is_refused_before_lookup(county, ask):
    reply = ask("查询 529901195608080011 杨树林", sender="13700000045")
    assert "校验" in reply.text or "不对" in reply.text
    assert "已拨付" not in reply.text


def test_five_failed_tries_a_day_then_polite_refusal(county, ask):
    for _ in range(5):
        ask("查询 52990119560808001X 王五", sender="13700000046")
    reply = ask("查询 52990119560808001X 杨树林", sender="13700000046")  # now right, but locked
    assert "明天" in reply.text and "已拨付" not in reply.text
    assert county["verified"].count == 0


def test_personal_estimate_uses_category_age_and_what_was_already_paid(county, ask):
    # 杨树林: born 1956 (≥ 60: +10 points), 35000 already reimbursed in 2026 → 25000 left of 60000
    reply = ask("我在省医院又住院花了5万能报多少", sender="13800009001")
    assert reply.intent == "estimate"
    assert reply.data["estimate"]["reimbursed"] == "25000.00"
    assert "35000" in reply.text and "25000" in reply.text and "杨树林" not in reply.text


def test_personal_estimate_for_a_wubao_member(county, ask):
    reply = ask("在南坪乡卫生院住院花了1000", sender="13800009002")
    assert reply.data["estimate"]["reimbursed"] == "900.00"  # 80% + 10 points


def test_third_party_estimate_does_not_use_the_senders_data(county, ask):
    reply = ask("我儿子在省医院住院花了5万", sender="13800009001")
    assert reply.data["estimate"]["reimbursed"] == "29880.00"  # (50000 − 200) × 60%


@pytest.mark.parametrize("text, number, name", [
    ("查询 52990119560808001X 杨树林", "52990119560808001X", "杨树林"),
    ("杨树林 52990119560808001x", "52990119560808001X", "杨树林"),
    ("我的身份证是529901196811300027,名字田玉珍,查一下报销", "529901196811300027", "田玉珍"),
    ("我叫杨树林身份证号52990119560808001X", "52990119560808001X", "杨树林"),
    ("查询52990119560808001X", "52990119560808001X", None),  # no name: asked again, not a failed try
    ("查询 杨树林", None, None),  # negative: no ID number
    ("电话13800009001", None, None),  # negative: a phone number is not an ID
])
def test_parse_identity(text, number, name):
    from xnh.handlers.lookup import parse_identity

    got = parse_identity(text)
    assert (got is None and number is None) or got == (number, name)


def test_an_id_without_a_name_is_asked_again_and_not_counted(county, ask):
    reply = ask("查询52990119560808001X", sender="13700000047")
    assert "姓名" in reply.text and county["identity_attempts"].count == 0


def test_the_words_of_the_message_decide_what_is_shown(county, ask):
    ask("查报销", sender="13700000048")  # asked for claims first
    reply = ask("身份证52990119560808001X 姓名杨树林 查参合", sender="13700000048")
    assert reply.intent == "enrollment" and "已参合" in reply.text


def test_an_open_claim_is_still_shown_after_new_year(county, ask, monkeypatch):
    monkeypatch.setenv("XNH_TODAY", "2027-01-10")
    reply = ask("查报销", sender="13800009001")
    assert "已受理" in reply.text and "宁波" in reply.text  # admitted 2026-04, not yet decided
    assert "已拨付" not in reply.text  # the paid 2026 claim is done: not repeated in 2027
