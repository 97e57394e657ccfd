"""xnh sync: every rejection reason, stale rows, idempotent re-runs, GBK/BOM/xlsx, unreadable files,
history and payment notifications, and a crash (SIGKILL) in the middle of a large import."""
import csv
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from xnh import sync
from xnh.cli import cli
from xnh.store import db as store
from xnh.sync import pipe, read, write
from xnh.idnumber import check_digit
from tests.conftest import shared_file

SUMMARY = re.compile(r"^inserted=(\d+) updated=(\d+) unchanged=(\d+) rejected=(\d+)$")

CLAIM_HEADER = sync.CLAIM_COLUMNS
ENROLLMENT_HEADER = sync.ENROLLMENT_COLUMNS
GOOD_CLAIM = dict(zip(CLAIM_HEADER, [
    "BC9000000001", "HH9000001-01", "王小明", "529901195504260016", "住院", "示范县人民医院", "县级医院",
    "2026-03-01", "2026-03-09", "12500.00", "12000.00", "", "已受理", "", "", "", "2026-03-10T09:00:00"]))
GOOD_MEMBER = dict(zip(ENROLLMENT_HEADER, [
    "2026", "HH9000001-01", "HH9000001", "王小明", "男", "529901195504260016", "户主", "138-0000-9001", "西河乡",
    "西河村", "普通", "30.00", "2025-11-03", "已参合", "2025-12-30T18:00:00"]))


def write_csv(path: Path, header, rows, encoding="utf-8") -> Path:
    with open(path, "w", encoding=encoding, newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        for row in rows:
            w.writerow([row.get(c, "") for c in header] if isinstance(row, dict) else row)
    return path


def claim(**changes) -> dict:
    return {**GOOD_CLAIM, **changes}


def member(**changes) -> dict:
    return {**GOOD_MEMBER, **changes}


def counts(result) -> tuple:
    return result.inserted, result.updated, result.unchanged, result.rejected


def table_count(db, table) -> int:
    return db.execute(f"select count(*) from {table}").fetchone()[0]


@pytest.fixture
def copy(tmp_path):
    """copy('claims.csv') → a writable copy of a sample file (reports are written next to it)."""
    def _copy(name):
        target = tmp_path / name
        target.write_bytes(shared_file(f"data/{name}").read_bytes())
        return target
    return _copy


# -- the shared samples --------------------------------------------------------------------------

def test_sample_bad_rows_are_rejected_with_line_column_and_reason(db, copy):
    sync.run(db, "enrollment", copy("enrollment.csv"))
    assert counts(sync.run(db, "claims", copy("claims.csv")))[0] == 87
    result = sync.run(db, "claims", copy("claims_with_bad_rows.csv"))
    # rows 3–7 change nothing; row 14 gives BC20260000001 of row 2 again: both are rejected (never half-applied)
    assert counts(result) == (0, 0, 5, 8)
    report = list(csv.DictReader(open(result.report, encoding="utf-8-sig")))
    got = [(int(r["行号"]), r["出错的列"], r["原因"]) for r in report]
    assert got == [
        (8, "身份证号", "身份证号校验位不对"),
        (9, "机构级别", "未知机构级别: 卫生部直属"),
        (10, "总费用", "总费用不是金额: 三千元整"),
        (11, "入院日期", "入院日期不是有效日期: 2026-13-45"),
        (12, "结算单号", "缺少结算单号"),
        (13, "状态", "未知状态: 已经给了"),
        (2, "结算单号", "结算单号在文件中出现2次: 第2、14行"),
        (14, "结算单号", "结算单号在文件中出现2次: 第2、14行"),
    ]
    # the export's own columns, with the row's cells under them
    assert (report[0]["结算单号"], report[0]["参合证号"], report[0]["机构级别"]) == \
        ("BC20260000007", "HH0100006-02", "乡镇卫生院")
    stored = list(db.query("select line, \"column\", reason from rejected_rows where sync_run_id = ? order by line",
                           [result.run_id]))
    assert [(r["line"], r["column"], r["reason"]) for r in stored] == sorted(got)
    row = db.execute("select status, reimbursed from claims where claim_id = 'BC20260000001'").fetchone()
    assert row == ("已拨付", "640.00")  # neither row 2 nor row 14 (审核中) was applied


def test_a_clean_file_leaves_no_report_and_clears_a_stale_one(db, copy):
    source = copy("enrollment.csv")
    stale = source.with_name(source.name + ".rejected.csv")
    stale.write_text("line,column,reason,raw\n9,x,old,y\n", encoding="utf-8")
    result = sync.run(db, "enrollment", source)
    assert result.rejected == 0 and not stale.exists()
    assert result.summary_lines()[-2] == "rejected rows: none (no report written)"


@pytest.mark.parametrize("name,kind,rows", [
    ("enrollment_gbk.csv", "enrollment", 150),
    ("claims_gbk.csv", "claims", 33),
])
def test_gbk_samples_import_cleanly(db, copy, name, kind, rows):
    if kind == "claims":
        sync.run(db, "enrollment", copy("enrollment_gbk.csv"))
    result = sync.run(db, kind, copy(name))
    assert result.encoding == "gb18030"
    assert counts(result) == (rows, 0, 0, 0)
    names = {r[0] for r in db.execute("select name from " + ("members" if kind == "enrollment" else "claims"))}
    assert all(re.fullmatch(r"[\u4e00-\u9fff·]+", n) for n in names)  # decoded, not mojibake


@pytest.mark.parametrize("per_statement", [1, 4, 128])
def test_a_claim_number_never_moves_to_another_member(db, copy, monkeypatch, per_statement):
    """claims_gbk.csv reuses the 结算单号 of claims.csv for other people: rejected, nothing overwritten
    (whether the rows are written one a statement or several: a statement refused by the trigger is
    written again row by row)."""
    monkeypatch.setattr(write, "ROWS_PER_STATEMENT", per_statement)
    sync.run(db, "claims", copy("claims.csv"))
    before = db.execute("select * from claims where claim_id = 'BC20260000001'").fetchone()
    result = sync.run(db, "claims", copy("claims_gbk.csv"))
    assert result.rejected == 33 and result.inserted == result.updated == 0
    assert "结算单号已属于另一参合证号" in result.reasons
    assert db.execute("select * from claims where claim_id = 'BC20260000001'").fetchone() == before


# -- one rejection reason per row -------------------------------------------------------------------

def _bad_id_date():
    body = "52990119991332001"  # month 13
    return body + check_digit(body)


@pytest.mark.parametrize("changes,column,reason", [
    ({}, None, None),  # the good row itself
    ({"身份证号": "529901195504260017"}, "身份证号", "身份证号校验位不对"),
    ({"身份证号": "52990119550426001"}, "身份证号", "身份证号应为18位"),
    ({"身份证号": _bad_id_date()}, "身份证号", "身份证号中的出生日期不对"),
    ({"机构级别": "卫生部直属"}, "机构级别", "未知机构级别: 卫生部直属"),
    ({"机构级别": ""}, "机构级别", "缺少机构级别"),
    ({"状态": "已经给了"}, "状态", "未知状态: 已经给了"),
    ({"就诊类型": "体检"}, "就诊类型", "未知就诊类型: 体检"),
    ({"总费用": "三千元整"}, "总费用", "总费用不是金额: 三千元整"),
    ({"总费用": "-5.00"}, "总费用", "总费用不是金额: -5.00"),
    ({"总费用": "12.345"}, "总费用", "总费用不是金额: 12.345"),
    ({"总费用": ""}, "总费用", "缺少总费用"),
    ({"补偿金额": "20000.00"}, "补偿金额", "补偿金额20000.00大于总费用12500.00"),
    ({"入院日期": "2026-13-45"}, "入院日期", "入院日期不是有效日期: 2026-13-45"),
    ({"入院日期": "三月一日"}, "入院日期", "入院日期不是日期: 三月一日"),
    ({"入院日期": ""}, "入院日期", "缺少入院日期"),
    ({"出院日期": "2026-02-01"}, "出院日期", "出院日期早于入院日期: 2026-02-01"),
    ({"拨付日期": "2026-02-30"}, "拨付日期", "拨付日期不是有效日期: 2026-02-30"),
    ({"更新时间": "昨天"}, "更新时间", "更新时间不是日期时间: 昨天"),
    ({"更新时间": ""}, "更新时间", "缺少更新时间"),
    ({"结算单号": ""}, "结算单号", "缺少结算单号"),
    ({"结算单号": "  "}, "结算单号", "缺少结算单号"),
    ({"参合证号": ""}, "参合证号", "缺少参合证号"),
])
def test_claim_row_checks(db, tmp_path, changes, column, reason):
    path = write_csv(tmp_path / "c.csv", CLAIM_HEADER, [claim(**changes)])
    result = sync.run(db, "claims", path)
    if reason is None:
        assert counts(result) == (1, 0, 0, 0)
        return
    assert counts(result) == (0, 0, 0, 1)
    row = db.execute('select line, "column", reason from rejected_rows').fetchone()
    assert row == (2, column, reason)
    assert table_count(db, "claims") == 0


@pytest.mark.parametrize("changes,column,reason", [
    ({}, None, None),
    ({"人员类别": "贫困户"}, "人员类别", "未知人员类别: 贫困户"),
    ({"人员类别": ""}, "人员类别", "缺少人员类别"),
    ({"参合状态": "已交钱"}, "参合状态", "未知参合状态: 已交钱"),
    ({"年度": "26"}, "年度", "年度不对: 26"),
    ({"年度": ""}, "年度", "缺少年度"),
    ({"性别": "M"}, "性别", "未知性别: M"),
    ({"联系电话": "138abc"}, "联系电话", "联系电话不对: 138abc"),
    ({"联系电话": "+"}, "联系电话", "联系电话不对: +"),
    ({"缴费金额": "三十"}, "缴费金额", "缴费金额不是金额: 三十"),
    ({"缴费日期": "2025-11-31"}, "缴费日期", "缴费日期不是有效日期: 2025-11-31"),
    ({"户号": ""}, "户号", "缺少户号"),
    ({"参合证号": ""}, "参合证号", "缺少参合证号"),
    ({"身份证号": "529901195504260017"}, "身份证号", "身份证号校验位不对"),
])
def test_enrollment_row_checks(db, tmp_path, changes, column, reason):
    path = write_csv(tmp_path / "e.csv", ENROLLMENT_HEADER, [member(**changes)])
    result = sync.run(db, "enrollment", path)
    if reason is None:
        assert counts(result) == (1, 0, 0, 0)
        m = db.execute("select phone, id_number, household_id from members").fetchone()
        assert m == ("13800009001", "529901195504260016", "HH9000001")
        return
    assert counts(result) == (0, 0, 0, 1)
    assert db.execute('select line, "column", reason from rejected_rows').fetchone() == (2, column, reason)


def test_a_phone_abroad_is_kept_with_its_plus(db, tmp_path):
    path = write_csv(tmp_path / "e.csv", ENROLLMENT_HEADER, [member(联系电话="+44 20 7946 0958")])
    assert counts(sync.run(db, "enrollment", path)) == (1, 0, 0, 0)
    assert db.execute("select phone from members").fetchone() == ("+442079460958",)


def test_short_rows_blank_lines_and_accepted_spellings(db, tmp_path):
    rows = [
        claim(),
        ["BC9000000002", "HH9000001-01"],  # too few cells
        [""] * len(CLAIM_HEADER),  # a blank spreadsheet row: skipped, not rejected
        claim(结算单号="BC9000000003", 入院日期="2026/3/5", 出院日期="2026年3月9日", 总费用="12,500",
              身份证号="52990119560808001x", 更新时间="2026/3/10 9:00"),
    ]
    path = write_csv(tmp_path / "c.csv", CLAIM_HEADER, rows)
    result = sync.run(db, "claims", path)
    assert counts(result) == (2, 0, 0, 1)
    assert db.execute('select line, reason from rejected_rows').fetchone() == (3, "列数不对: 2列,应为17列")
    row = db.execute("select admitted, discharged, total, id_number, updated_at, level, household_id "
                     "from claims where claim_id = 'BC9000000003'").fetchone()
    assert row == ("2026-03-05", "2026-03-09", "12500.00", "52990119560808001X", "2026-03-10T09:00:00", "county",
                   "HH9000001")


# -- upsert: stale rows, idempotence, history, notifications ----------------------------------------

def test_stale_newer_and_same_rows(db, tmp_path):
    sync.run(db, "enrollment", write_csv(tmp_path / "e.csv", ENROLLMENT_HEADER, [member()]))
    first = sync.run(db, "claims", write_csv(tmp_path / "c1.csv", CLAIM_HEADER, [claim()]))
    assert counts(first) == (1, 0, 0, 0)
    older = claim(状态="已拨付", 补偿金额="9000.00", 更新时间="2026-03-09T09:00:00")
    same_time = claim(状态="审核中", 更新时间="2026-03-10T09:00:00")
    for i, row in enumerate([older, same_time]):
        assert counts(sync.run(db, "claims", write_csv(tmp_path / f"c2{i}.csv", CLAIM_HEADER, [row]))) == (0, 0, 1, 0)
    assert db.execute("select status from claims").fetchone() == ("已受理",)
    steps = [claim(状态="审核中", 更新时间="2026-03-20T09:00:00"),
             claim(状态="审核通过", 补偿金额="8400.00", 更新时间="2026-04-01T09:00:00"),
             claim(状态="已拨付", 补偿金额="8400.00", 拨付日期="2026-04-20", 拨付方式="一卡通",
                   更新时间="2026-04-20T09:00:00")]
    for i, row in enumerate(steps):  # one export a day: each gives the claim once
        newer = sync.run(db, "claims", write_csv(tmp_path / f"c3{i}.csv", CLAIM_HEADER, [row]))
        assert counts(newer) == (0, 1, 0, 0)
    history = db.execute("select old_status, status, changed_at from claim_history order by id").fetchall()
    assert history == [(None, "已受理", "2026-03-10T09:00:00"), ("已受理", "审核中", "2026-03-20T09:00:00"),
                       ("审核中", "审核通过", "2026-04-01T09:00:00"), ("审核通过", "已拨付", "2026-04-20T09:00:00")]
    note = db.execute("select recipient, kind, ref, status, text from outbox").fetchall()
    assert len(note) == 1
    phone, kind, ref, status, text = note[0]
    # paid 2026-04-20, more than 30 days before the policy date 2026-06-15: recorded, not announced
    assert (phone, kind, ref, status) == ("13800009001", "payment", "BC9000000001", "skipped")
    assert "王*明" in text and "王小明" not in text and "8400元" in text and "4月20日" in text
    # a newer timestamp with nothing else changed is not an update; the same file again changes nothing
    again = sync.run(db, "claims", write_csv(tmp_path / "c4.csv", CLAIM_HEADER,
                                              [{**steps[-1], "更新时间": "2026-05-01T09:00:00"}]))
    assert counts(again) == (0, 0, 1, 0)
    assert counts(sync.run(db, "claims", tmp_path / "c32.csv")) == (0, 0, 1, 0)
    assert table_count(db, "claim_history") == 4 and table_count(db, "outbox") == 1


def _snapshot(db) -> dict:
    return {"claims": db.execute("select * from claims order by claim_id").fetchall(),
            "history": db.execute("select id, claim_id, old_status, status, changed_at from claim_history "
                                  "order by id").fetchall(),
            "outbox": db.execute("select id, recipient, ref, text from outbox order by id").fetchall(),
            "rejected": db.execute('select line, "column", reason, raw from rejected_rows order by id').fetchall()}


@pytest.mark.parametrize("block", [2, 5000])
@pytest.mark.parametrize("reader_process", [False, True])
@pytest.mark.parametrize("per_statement", [1, 3, 128])
def test_first_import_in_bulk_mode_equals_the_upsert_path(tmp_path, monkeypatch, block, reader_process,
                                                            per_statement):
    """Bulk mode (empty claims table) and the upsert path give the same tables; a 结算单号 given twice in
    the file rejects every row of it, whichever path finds it, and however many rows a statement writes
    (a statement that fails on a repeated key is written again row by row)."""
    monkeypatch.setattr(write, "ROWS_PER_STATEMENT", per_statement)
    rows = [claim(结算单号="BC1", 状态="已受理", 更新时间="2026-03-10T09:00:00"),
            claim(结算单号="BC2", 状态="已拨付", 补偿金额="100.00", 拨付日期="2026-04-01", 更新时间="2026-04-01T09:00:00"),
            claim(结算单号="BC3", 总费用="abc"),
            claim(结算单号="BC1", 状态="审核中", 更新时间="2026-03-20T09:00:00"),  # repeated: newer
            claim(结算单号="BC1", 状态="已拨付", 更新时间="2026-03-01T09:00:00"),  # repeated: older
            claim(结算单号="BC5", 参合证号="HH9000002-01"),
            claim(结算单号="BC4", 状态="已拨付", 补偿金额="10.00", 拨付日期="2026-04-02", 更新时间="2026-04-02T09:00:00"),
            claim(结算单号="BC1", 状态="已拨付", 补偿金额="90.00", 拨付日期="2026-04-03", 更新时间="2026-04-03T09:00:00")]
    monkeypatch.setattr(read, "MAX_BLOCK_LINES", block)
    if reader_process:
        monkeypatch.setattr(pipe, "PARALLEL_MIN_BYTES", 0)
    results, snapshots = [], []
    for name in ("bulk", "upsert"):
        if name == "upsert":
            init = write.Writer.__init__
            monkeypatch.setattr(write.Writer, "__init__",
                                lambda self, conn, kind, run_id, bulk, *a: init(self, conn, kind, run_id, False, *a))
        db = store.open_db(str(tmp_path / f"{name}.db"))
        sync.run(db, "enrollment", write_csv(tmp_path / "e.csv", ENROLLMENT_HEADER, [member()]))
        results.append(counts(sync.run(db, "claims", write_csv(tmp_path / f"{name}.csv", CLAIM_HEADER, rows))))
        snapshots.append(_snapshot(db))
        db.close()
    assert results[0] == results[1] == (3, 0, 0, 5)
    assert snapshots[0] == snapshots[1]
    assert [h[1:4] for h in snapshots[0]["history"]] == [
        ("BC2", None, "已拨付"), ("BC5", None, "已受理"), ("BC4", None, "已拨付")]
    assert sorted(n[2] for n in snapshots[0]["outbox"]) == ["BC2", "BC4"]
    assert snapshots[0]["claims"][0][2] == "HH9000001"  # the household from members
    assert [r[:3] for r in snapshots[0]["rejected"]] == [
        (4, "总费用", "总费用不是金额: abc"),
        (2, "结算单号", "结算单号在文件中出现4次: 第2、5、6、9行"), (5, "结算单号", "结算单号在文件中出现4次: 第2、5、6、9行"),
        (6, "结算单号", "结算单号在文件中出现4次: 第2、5、6、9行"), (9, "结算单号", "结算单号在文件中出现4次: 第2、5、6、9行")]


def test_idempotent_rerun_of_the_samples(db, copy):
    files = [("enrollment", copy("enrollment.csv")), ("claims", copy("claims.csv"))]
    for kind, path in files:
        sync.run(db, kind, path)
    snapshot = {t: db.execute(f"select * from {t} order by 1, 2").fetchall()
                for t in ("members", "enrollments", "claims", "claim_history", "outbox")}
    for kind, path in files:
        result = sync.run(db, kind, path)
        assert result.inserted == result.updated == result.rejected == 0
    for table, rows in snapshot.items():
        assert db.execute(f"select * from {table} order by 1, 2").fetchall() == rows
    runs = db.execute("select kind, inserted, updated, unchanged, rejected, status from sync_runs").fetchall()
    assert runs == [("enrollment", 378, 0, 0, 0, "ok"), ("claims", 87, 0, 0, 0, "ok"),
                    ("enrollment", 0, 0, 378, 0, "ok"), ("claims", 0, 0, 87, 0, "ok")]


def test_members_latest_data_and_claim_households(db, tmp_path):
    # a claim imported before the enrollment guesses the household from 参合证号 ...
    sync.run(db, "claims", write_csv(tmp_path / "c.csv", CLAIM_HEADER,
                                     [claim(参合证号="HH9000002-03", 状态="已拨付", 补偿金额="100.00",
                                            拨付日期="2026-04-01")]))
    assert db.execute("select household_id from claims").fetchone() == ("HH9000002",)
    assert table_count(db, "outbox") == 0  # no phone known yet
    # ... and is corrected when the member's enrollment says otherwise (moved household by marriage)
    rows = [member(年度="2025", 参合证号="HH9000002-03", 户号="HH9000002", 联系电话="13800000002",
                   更新时间="2024-12-30T18:00:00"),
            member(年度="2026", 参合证号="HH9000002-03", 户号="HH9000077", 联系电话="13800000077",
                   更新时间="2025-12-30T18:00:00")]
    result = sync.run(db, "enrollment", write_csv(tmp_path / "e.csv", ENROLLMENT_HEADER, list(reversed(rows))))
    assert counts(result) == (2, 0, 0, 0)
    assert db.execute("select household_id, phone, updated_at from members").fetchone() == \
        ("HH9000077", "13800000077", "2025-12-30T18:00:00")
    assert db.execute("select household_id from claims").fetchone() == ("HH9000077",)


def test_payment_notice_uses_a_household_phone_and_is_queued_once(db, tmp_path):
    sync.run(db, "enrollment", write_csv(tmp_path / "e.csv", ENROLLMENT_HEADER, [
        member(),  # 户主 with a phone
        member(参合证号="HH9000001-02", 姓名="王芳", 与户主关系="女", 联系电话="", 身份证号="")]))
    paid = claim(参合证号="HH9000001-02", 姓名="王芳", 状态="已拨付", 补偿金额="640.00", 拨付日期="2026-03-23",
                 拨付方式="一卡通")
    result = sync.run(db, "claims", write_csv(tmp_path / "c.csv", CLAIM_HEADER, [paid]))
    assert result.notifications == 1
    phone, text = db.execute("select recipient, text from outbox").fetchone()
    assert phone == "13800009001"
    assert text == "【新农合】王*3月示范县人民医院住院的补偿款640元已于3月23日拨付到一卡通,请查收。"
    assert "\n" not in text
    from xnh.store import outbox as notify
    assert notify.queue_payment(db, "BC9000000001") is False  # already queued


# -- encodings and formats --------------------------------------------------------------------------

@pytest.mark.parametrize("encoding,detected", [("utf-8", "utf-8"), ("utf-8-sig", "utf-8-sig"),
                                               ("gbk", "gb18030"), ("gb18030", "gb18030")])
def test_encodings(db, tmp_path, encoding, detected):
    path = write_csv(tmp_path / "c.csv", CLAIM_HEADER, [claim(医疗机构="示范县人民医院·东院")], encoding=encoding)
    result = sync.run(db, "claims", path)
    assert (result.encoding, counts(result)) == (detected, (1, 0, 0, 0))
    assert db.execute("select hospital, name from claims").fetchone() == ("示范县人民医院·东院", "王小明")


def test_xlsx(db, tmp_path):
    import datetime as dt

    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    ws.append(["示范县合管办 补偿记录导出"])  # a title row above the header, as clerks' sheets often have
    ws.append(list(CLAIM_HEADER))
    good = claim()
    typed = [good[c] for c in CLAIM_HEADER]
    typed[7], typed[8] = dt.datetime(2026, 3, 1), dt.date(2026, 3, 9)  # Excel date cells
    typed[9], typed[10] = 12500, 12000.5  # numbers
    typed[16] = dt.datetime(2026, 3, 10, 9, 0)
    ws.append(typed)
    ws.append([None] * len(CLAIM_HEADER))
    ws.append([{**good, "结算单号": "BC9000000002", "状态": "已经给了"}[c] for c in CLAIM_HEADER])
    path = tmp_path / "claims.xlsx"
    wb.save(path)
    result = sync.run(db, "claims", path)
    assert (result.encoding, counts(result)) == ("xlsx", (1, 0, 0, 1))
    row = db.execute("select admitted, discharged, total, eligible, updated_at from claims").fetchone()
    assert row == ("2026-03-01", "2026-03-09", "12500.00", "12000.50", "2026-03-10T09:00:00")
    assert db.execute('select line, "column" from rejected_rows').fetchone() == (5, "状态")


# -- files that cannot be read at all ---------------------------------------------------------------

def _unreadable(tmp_path):
    wrong = write_csv(tmp_path / "wrong.csv", ["结算单号", "姓名"], [["BC1", "王"]])
    binary = tmp_path / "photo.csv"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    fake_xlsx = tmp_path / "fake.xlsx"
    fake_xlsx.write_text("not a workbook")
    enrollment = write_csv(tmp_path / "e.csv", ENROLLMENT_HEADER, [member()])
    return [(tmp_path / "missing.csv", "找不到文件"), (wrong, "缺少列"), (binary, "不是CSV表格文件"),
            (empty, "文件是空的"), (fake_xlsx, "无法打开Excel文件"), (enrollment, "这是参合人员文件")]


def test_unreadable_files_raise_and_write_nothing(db, tmp_path):
    for path, words in _unreadable(tmp_path):
        with pytest.raises(sync.SyncError) as e:
            sync.run(db, "claims", path)
        assert words in str(e.value) and "\n" not in str(e.value)
    assert table_count(db, "sync_runs") == 0 and table_count(db, "claims") == 0


def test_cli_summary_and_exit_codes(tmp_path, monkeypatch, copy):
    monkeypatch.setenv("XNH_DB", str(tmp_path / "cli.db"))
    runner = CliRunner()
    path = copy("claims_with_bad_rows.csv")
    out = runner.invoke(cli, ["sync", "claims", str(path), "--no-progress"])
    assert out.exit_code == 0, out.output
    lines = out.output.strip().splitlines()
    assert SUMMARY.match(lines[-1]).groups() == ("5", "0", "0", "8")  # BC…001 twice: rows 2 and 14 rejected
    assert any(f"rejected rows written to {path.resolve()}.rejected.csv" in line for line in lines)
    for bad, words in _unreadable(tmp_path):
        out = runner.invoke(cli, ["sync", "claims", str(bad)])
        assert out.exit_code == 2 and words in out.output
    # the installed command, as other programs run it
    env = dict(os.environ, XNH_DB=str(tmp_path / "sub.db"))
    xnh = [sys.executable, "-m", "xnh"]
    ok = subprocess.run([*xnh, "sync", "enrollment", str(copy("enrollment.csv"))],
                        env=env, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.strip().splitlines()[-1] == "inserted=378 updated=0 unchanged=0 rejected=0"
    bad = subprocess.run([*xnh, "sync", "claims", str(tmp_path / "nope.csv")],
                         env=env, capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.strip().count("\n") == 0 and "找不到文件" in bad.stderr


def test_report_falls_back_to_the_working_directory(db, tmp_path, monkeypatch, copy):
    path = copy("claims_with_bad_rows.csv")
    readonly = tmp_path / "ro"
    readonly.mkdir()
    target = readonly / path.name
    target.write_bytes(path.read_bytes())
    readonly.chmod(0o555)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    try:
        if os.access(readonly, os.W_OK):
            pytest.skip("running as a user who can write anywhere")
        result = sync.run(db, "claims", target)
    finally:
        readonly.chmod(0o755)
    assert result.report == str(cwd / (path.name + ".rejected.csv"))
    assert "not writable" in result.report_note


# -- large files: the reader process, and a crash in the middle ----------------------------------------

def _big_claims(path: Path, rows: int, bad_every: int = 0) -> Path:
    r = random.Random(7)
    with open(path, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(CLAIM_HEADER)
        for i in range(rows):
            body = f"5299011960{r.randint(1, 12):02d}{r.randint(1, 28):02d}{r.randint(0, 999):03d}"
            number = body + check_digit(body)
            status = ("已受理", "审核中", "已拨付")[i % 3]
            level = "卫生部直属" if bad_every and i % bad_every == 0 else "县级医院"
            w.writerow([f"BC{i:012d}", f"HH{i % 50000:07d}-01", "张三", number, "住院", "示范县人民医院", level,
                        "2026-03-01", "2026-03-05", "1000.00", "900.00", "630.00", status, "",
                        "2026-04-01" if status == "已拨付" else "", "", "2026-04-01T09:00:00"])
    return path


@pytest.mark.parametrize("reader_process", [False, True])
def test_a_large_file_in_many_blocks(db, tmp_path, monkeypatch, reader_process):
    path = _big_claims(tmp_path / "big.csv", 12_000, bad_every=1000)
    if reader_process:
        monkeypatch.setattr(pipe, "PARALLEL_MIN_BYTES", 0)
    result = sync.run(db, "claims", path)
    assert counts(result) == (11_988, 0, 0, 12)
    assert table_count(db, "claim_history") == 11_988
    # indexes were dropped for the bulk load and are all back
    names = {r[0] for r in db.execute("select name from county.sqlite_master where type = 'index' and sql is not null "
                                      "and tbl_name in ('claims', 'claim_history')")}
    assert names == {"idx_claims_household_id_admitted", "idx_claims_member_id", "idx_claim_history_claim_id"}
    again = sync.run(db, "claims", path)
    assert counts(again) == (0, 0, 11_988, 12)
    assert again.skipped_blocks > 0  # blocks taken in whole the first time are not checked again


def test_kill_9_in_the_middle_leaves_the_database_as_it_was(tmp_path, copy):
    """The import's commit is cut by SIGKILL (a page cache of CACHE_KIB holds the rows until then): the
    database is as before and running again finishes the job."""
    db_path = tmp_path / "crash.db"
    db = store.open_db(str(db_path))
    sync.run(db, "claims", copy("claims.csv"))
    before = {t: table_count(db, t) for t in ("claims", "claim_history", "sync_runs", "rejected_rows",
                                              "outbox")}
    db.close()
    big = _big_claims(tmp_path / "big.csv", 200_000, bad_every=5000)
    env = dict(os.environ, XNH_DB=str(db_path))
    code = ("from xnh import sync; from xnh.settings import Settings; from xnh.store import db; "
            "sync.run(db.open_db(Settings.from_env().db_path), 'claims', %r)" % str(big))
    proc = subprocess.Popen([sys.executable, "-c", code], env=env)
    wal = Path(store.county_path(str(db_path)) + "-wal")  # the import writes the county file
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if wal.exists() and wal.stat().st_size > 2_000_000:  # writing has started
            break
        time.sleep(0.01)
    assert proc.poll() is None, "the sync finished before it could be killed: make the file larger"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    db = store.open_db(str(db_path))
    after = {t: table_count(db, t) for t in before}
    assert after == before
    assert db.execute("pragma integrity_check").fetchone() == ("ok",)
    db.close()


def _processes_of(group: int) -> list[int]:
    """The live processes in process group `group` (from /proc; zombies count as gone)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        state, _ppid, pgrp = stat.rpartition(")")[2].split()[:3]
        if int(pgrp) == group and state != "Z":
            found.append(int(entry.name))
    return found


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
def test_kill_9_in_the_middle_leaves_the_database_as_it_was_and_no_process(tmp_path, copy):
    """A real `xnh sync` of a large file killed with SIGKILL while it writes: within 5 s no process of it
    is left, the database is as before, no half-written report is left once a sync runs again, and
    running again finishes the job."""
    db_path = tmp_path / "crash.db"
    db = store.open_db(str(db_path))
    sync.run(db, "claims", copy("claims.csv"))
    before = {t: table_count(db, t) for t in ("claims", "claim_history", "sync_runs", "rejected_rows",
                                              "outbox")}
    db.close()
    big = _big_claims(tmp_path / "big.csv", 200_000, bad_every=5000)
    env = dict(os.environ, XNH_DB=str(db_path))
    proc = subprocess.Popen([sys.executable, "-m", "xnh", "sync", "claims", str(big), "--no-progress"], env=env,
                            start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    wal = Path(store.county_path(str(db_path)) + "-wal")
    while time.monotonic() < deadline and proc.poll() is None:
        if wal.exists() and wal.stat().st_size > 2_000_000:  # writing has started
            break
        time.sleep(0.01)
    assert proc.poll() is None, "the sync finished before it could be killed: make the file larger"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 5
    while _processes_of(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    left = _processes_of(proc.pid)
    for pid in left:  # don't leave it behind for the next test either
        os.kill(pid, signal.SIGKILL)
    assert not left, "the reader process outlived the killed sync"
    db = store.open_db(str(db_path))
    after = {t: table_count(db, t) for t in before}
    assert after == before
    assert db.execute("pragma integrity_check").fetchone() == ("ok",)
    result = sync.run(db, "claims", big)  # running again finishes the job
    assert counts(result) == (199_960, 0, 0, 40)
    assert table_count(db, "claims") == before["claims"] + 199_960
    db.close()


def test_the_summary_names_the_first_rejected_lines(db, copy):
    sync.run(db, "enrollment", copy("enrollment.csv"))
    lines = sync.run(db, "claims", copy("claims_with_bad_rows.csv")).summary_lines()
    assert "  line 8, 身份证号: 身份证号校验位不对" in lines and "  line 13, 状态: 未知状态: 已经给了" in lines
    assert SUMMARY.match(lines[-1])


def test_the_reader_process_carries_any_cell(db, tmp_path, monkeypatch):
    """Cells holding the pipe's separators (\x1e, \x1f) go pickled, and arrive as they were."""
    monkeypatch.setattr(pipe, "PARALLEL_MIN_BYTES", 0)
    rows = [claim(结算单号="BC1", 医疗机构="示范县\x1f人民医院"), claim(结算单号="BC2", 姓名="王\x1e小明"),
            claim(结算单号="BC3"), claim(结算单号="BC4", 总费用="abc")]
    result = sync.run(db, "claims", write_csv(tmp_path / "c.csv", CLAIM_HEADER, rows))
    assert counts(result) == (3, 0, 0, 1)
    assert db.execute("select hospital, name from claims order by claim_id").fetchall() == [
        ("示范县\x1f人民医院", "王小明"), ("示范县人民医院", "王\x1e小明"), ("示范县人民医院", "王小明")]


@pytest.mark.parametrize("reader_process", [False, True])
@pytest.mark.parametrize("kind", ["enrollment", "claims"])
def test_a_key_again_after_a_skipped_block_is_found(db, tmp_path, monkeypatch, reader_process, kind):
    """A re-sent export skips the blocks taken in whole before, yet a key of one of them given again later in
    the file still rejects both rows (keys of skipped blocks are noted, as those of checked rows)."""
    monkeypatch.setattr(read, "MAX_BLOCK_LINES", 3)
    if reader_process:
        monkeypatch.setattr(pipe, "PARALLEL_MIN_BYTES", 0)
    if kind == "enrollment":
        header, rows = ENROLLMENT_HEADER, [member(参合证号=f"HH9000001-{i:02d}", 身份证号="") for i in range(1, 10)]
        again = member(参合证号="HH9000001-01", 身份证号="", 联系电话="13900000000", 更新时间="2026-01-05T09:00:00")
    else:
        header, rows = CLAIM_HEADER, [claim(结算单号=f"BC{i}") for i in range(1, 10)]
        again = claim(结算单号="BC1", 状态="审核中", 更新时间="2026-03-20T09:00:00")
    first = sync.run(db, kind, write_csv(tmp_path / "a.csv", header, rows))
    assert counts(first) == (9, 0, 0, 0)
    result = sync.run(db, kind, write_csv(tmp_path / "b.csv", header, rows + [again]))
    assert result.skipped_blocks >= 2
    assert counts(result) == (0, 0, 8, 2)
    assert [r[0] for r in db.execute("select line from rejected_rows where sync_run_id = ? order by line",
                                     [result.run_id])] == [2, 11]


_BC = [claim(结算单号=f"BC{i}") for i in range(1, 7)]
_BC2_NEWER = claim(结算单号="BC2", 状态="审核中", 更新时间="2026-03-20T09:00:00")


@pytest.mark.parametrize("reader_process", [False, True])
@pytest.mark.parametrize("name,earlier,again,expected,lines", [
    ("no key twice", [_BC], _BC + [claim(结算单号="BC7")], (1, 0, 6, 0), []),
    ("a new key twice", [_BC], _BC + [claim(结算单号="BC7"), claim(结算单号="BC7", 状态="审核中")], (0, 0, 6, 2), [8, 9]),
    ("a skipped part's key again in a new row", [_BC], _BC + [_BC2_NEWER], (0, 0, 5, 2), [3, 8]),
    ("a skipped part given twice", [_BC], _BC + _BC[:2], (0, 0, 4, 4), [2, 3, 8, 9]),
    ("skipped parts of two earlier imports sharing a key", [_BC[:2], [_BC2_NEWER, claim(结算单号="BC9")]],
     _BC[:2] + [_BC2_NEWER, claim(结算单号="BC9")], (0, 0, 2, 2), [3, 4]),
    ("a rejected row's key in a good row", [_BC], _BC + [claim(结算单号="BC7"), claim(结算单号="BC7", 总费用="abc")],
     (0, 0, 6, 2), [8, 9]),
])
def test_a_re_sync_finds_keys_given_twice_by_their_hashes(db, tmp_path, monkeypatch, reader_process, name, earlier,
                                                          again, expected, lines):
    """A re-sync notes no key (pipe.events hashes them all in the reader); when two hashes are equal the
    pass is done again noting every key, so a key given twice anywhere (new rows, a part an earlier import
    took whole, the same part twice, parts of two earlier imports) still rejects all its rows, and a file
    without one is written in one pass."""
    monkeypatch.setattr(read, "MAX_BLOCK_LINES", 2)
    if reader_process:
        monkeypatch.setattr(pipe, "PARALLEL_MIN_BYTES", 0)
    for i, rows in enumerate(earlier):
        assert sync.run(db, "claims", write_csv(tmp_path / f"earlier{i}.csv", CLAIM_HEADER, rows)).rejected == 0
    noted = []
    note = write.Writer._note_keys
    monkeypatch.setattr(write.Writer, "_note_keys", lambda self, keys, n=1: (noted.extend(keys), note(self, keys, n)))
    result = sync.run(db, "claims", write_csv(tmp_path / "again.csv", CLAIM_HEADER, again))
    assert counts(result) == expected
    assert [r[0] for r in db.execute("select line from rejected_rows where sync_run_id = ? order by line",
                                     [result.run_id])] == lines
    assert bool(noted) == bool(lines)  # keys noted only in the pass after equal hashes
    assert result.skipped_blocks >= (0 if lines else 3)


@pytest.mark.parametrize("reader_process", [False, True])
def test_keys_of_one_hash_that_differ_reject_nothing(db, tmp_path, monkeypatch, reader_process):
    """Every key hashed alike (as two keys in 10^11 files might be): the pass again noting every key
    finds none given twice, and the tables are as with distinct hashes."""
    monkeypatch.setattr(read, "MAX_BLOCK_LINES", 2)
    if reader_process:
        monkeypatch.setattr(pipe, "PARALLEL_MIN_BYTES", 0)
    sync.run(db, "claims", write_csv(tmp_path / "a.csv", CLAIM_HEADER, _BC))
    monkeypatch.setattr(pipe, "_hash", lambda key: 7)
    result = sync.run(db, "claims", write_csv(tmp_path / "b.csv", CLAIM_HEADER, _BC + [_BC2_NEWER.copy() | {
        "结算单号": "BC8"}, claim(结算单号="BC9")]))
    assert counts(result) == (2, 0, 6, 0)
    assert db.execute("select count(*) from claims").fetchone()[0] == 8


def test_block_digests_of_old_imports_are_let_go(db, tmp_path, monkeypatch):
    """Only the digests of the last KEEP_RUNS imports of a kind are kept: the table (read whole into memory
    by each sync) does not grow with years of exports."""
    monkeypatch.setattr(read, "MAX_BLOCK_LINES", 2)
    for day in range(5):
        rows = [claim(结算单号=f"BC{day}{i}") for i in range(4)]
        sync.run(db, "claims", write_csv(tmp_path / f"c{day}.csv", CLAIM_HEADER, rows))
    runs = [r[0] for r in db.execute("select distinct sync_run_id from sync_blocks order by 1")]
    assert len(runs) == write.KEEP_RUNS
    assert 2 * write.KEEP_RUNS <= table_count(db, "sync_blocks") <= 4 * write.KEEP_RUNS  # 1–2 parts a block
    latest = db.execute("select count(*) from sync_blocks where sync_run_id = ?", [runs[-1]]).fetchone()[0]
    again = sync.run(db, "claims", tmp_path / "c4.csv")  # the latest file again: skipped, and its digests kept
    assert again.skipped_blocks == latest and counts(again) == (0, 0, 4, 0)


def test_a_slightly_changed_export_rechecks_only_the_parts_that_changed(db, tmp_path):
    rows = [claim(结算单号=f"BC{i:05d}", 更新时间="2026-03-10T09:00:00") for i in range(3000)]
    sync.run(db, "claims", write_csv(tmp_path / "a.csv", CLAIM_HEADER, rows))
    rows[1500] = {**rows[1500], "状态": "审核中", "更新时间": "2026-03-20T09:00:00"}
    rows.append(claim(结算单号="BC99999"))
    result = sync.run(db, "claims", write_csv(tmp_path / "b.csv", CLAIM_HEADER, rows))
    assert counts(result) == (1, 1, 2999, 0)
    parts = db.execute("select count(*) from sync_blocks where sync_run_id = ?", [result.run_id]).fetchone()[0]
    assert result.skipped_blocks >= parts - 3  # all but the changed part, the new last one (and a neighbour)
    assert db.execute("select status from claims where claim_id = 'BC01500'").fetchone() == ("审核中",)
