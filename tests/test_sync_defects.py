"""Exports checked like a bank statement (issue 17): one row per defect, each with the reason its line
gets and the rest of the file imported, or the whole file refused with its one-line reason where the
file itself is broken; the report's form; the summary's honesty."""
import csv
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from xnh import sync
from xnh.cli import cli
from xnh.sync import read
from tests.test_sync import (CLAIM_HEADER, ENROLLMENT_HEADER, claim, counts, member, table_count, write_csv)

FILLER = [claim(结算单号=f"BC80000000{i:02d}") for i in range(6)]  # good rows around each defect


def _claims_text(rows) -> str:
    """A claims export as text: the header, then `rows` (dicts, or a line as written)."""
    lines = [",".join(CLAIM_HEADER)]
    for row in rows:
        lines.append(row if isinstance(row, str) else ",".join(row[c] for c in CLAIM_HEADER))
    return "\n".join(lines) + "\n"


def _line(**changes) -> str:
    return ",".join(claim(**changes)[c] for c in CLAIM_HEADER)


# (name, rows between the filler, {line: (column, reason)}, rows imported)
DEFECTS = [
    ("paid after tomorrow", [_line(结算单号="BC1", 状态="已拨付", 补偿金额="100.00", 拨付日期="2030-01-01")],
     {5: ("拨付日期", "拨付日期晚于今天: 2030-01-01")}, 6),
    ("updated in 2099", [_line(结算单号="BC1", 更新时间="2099-01-01T00:00:00")],
     {5: ("更新时间", "更新时间晚于今天: 2099-01-01T00:00:00")}, 6),
    ("admitted after tomorrow", [_line(结算单号="BC1", 入院日期="2026-06-17", 出院日期="")],
     {5: ("入院日期", "入院日期晚于今天: 2026-06-17")}, 6),
    ("tomorrow is still accepted", [_line(结算单号="BC1", 入院日期="2026-06-16", 出院日期="")], {}, 7),
    ("结算单号 twice", [_line(结算单号="BC1"), _line(结算单号="BC1", 状态="审核中", 更新时间="2026-03-11T09:00:00")],
     {5: ("结算单号", "结算单号在文件中出现2次: 第5、6行"), 6: ("结算单号", "结算单号在文件中出现2次: 第5、6行")}, 6),
    ("结算单号 twice, once in a bad row",
     [_line(结算单号="BC1"), _line(结算单号="BC1", 总费用="abc")],
     {5: ("结算单号", "结算单号在文件中出现2次: 第5、6行"), 6: ("结算单号", "结算单号在文件中出现2次: 第5、6行")}, 6),
    ("a stray quote swallows nothing", [_line(结算单号="BC1", 姓名='"王小明'), _line(结算单号="BC2"), _line(结算单号="BC3")],
     {5: ("", "引号不成对")}, 8),
    ("a quote in the middle of a quoted cell", [_line(结算单号="BC1", 姓名='"王"小明"')],
     {5: ("", "CSV格式错误: ',' expected after '\"'")}, 6),
    ("a quoted cell is read", [_line(结算单号="BC1", 医疗机构='"示范县人民医院,东院"')], {}, 7),
    ("full-width amount and ID", [_line(结算单号="BC1", 总费用="１２５００．００", 身份证号="５２９９０１１９５５０４２６００１６")],
     {}, 7),
    ("a cell too long", [_line(结算单号="BC1", 医疗机构="院" * 501)], {5: ("医疗机构", "医疗机构太长(超过500字)")}, 6),
    ("a key too long", [_line(结算单号="B" * 65)], {5: ("结算单号", "结算单号太长(超过64字)")}, 6),
    ("too few cells", ["BC1,HH9000001-01"], {5: ("", "列数不对: 2列,应为17列")}, 6),
]


@pytest.mark.parametrize("name,middle,expected,imported", DEFECTS, ids=[d[0] for d in DEFECTS])
def test_a_defect_rejects_its_line_and_the_rest_is_imported(db, tmp_path, name, middle, expected, imported):
    path = tmp_path / "claims.csv"
    path.write_text(_claims_text(FILLER[:3] + middle + FILLER[3:]), encoding="utf-8")
    result = sync.run(db, "claims", path)
    got = {line: (column, reason) for line, column, reason in
           db.execute('select line, "column", reason from rejected_rows').fetchall()}
    assert got == expected
    assert (result.inserted, result.rejected) == (imported, len(expected))
    assert table_count(db, "claims") == imported
    assert result.inserted + result.updated + result.unchanged + result.rejected == len(FILLER) + len(middle)


def test_full_width_values_are_read_as_ascii(db, tmp_path):
    path = write_csv(tmp_path / "e.csv", ENROLLMENT_HEADER, [
        member(联系电话="１３８００００９００１", 身份证号="５２９９０１１９５５０４２６００１ｘ", 缴费金额="３０．００")])
    path.write_text(path.read_text(encoding="utf-8").replace("５２９９０１１９５５０４２６００１ｘ", "５２９９０１１９５５０４２６００１６"),
                    encoding="utf-8")
    assert counts(sync.run(db, "enrollment", path)) == (1, 0, 0, 0)
    assert db.execute("select phone, id_number, paid_amount from enrollments").fetchone() == \
        ("13800009001", "529901195504260016", "30.00")
    assert db.execute("select count(*) from members where phone = '13800009001'").fetchone() == (1,)


def test_the_same_member_twice_in_one_year_rejects_both_and_members_agree(db, tmp_path):
    rows = [member(), member(联系电话="13900000000", 更新时间="2025-12-31T18:00:00"),
            member(参合证号="HH9000001-02", 姓名="王芳", 身份证号="")]
    result = sync.run(db, "enrollment", write_csv(tmp_path / "e.csv", ENROLLMENT_HEADER, rows))
    assert counts(result) == (1, 0, 0, 2)
    assert db.execute('select line, reason from rejected_rows order by line').fetchall() == [
        (2, "年度和参合证号在文件中出现2次: 第2、3行"), (3, "年度和参合证号在文件中出现2次: 第2、3行")]
    assert db.execute("select member_id from members").fetchall() == db.execute(
        "select member_id from enrollments").fetchall() == [("HH9000001-02",)]


def test_an_over_long_line_is_skipped_without_holding_it(tmp_path):
    """A 100 MB line: rejected with its line number, the lines after it imported, and the sync's peak
    memory far below the line (it streams past in READ_BYTES pieces)."""
    path = tmp_path / "big_line.csv"
    with open(path, "w", encoding="utf-8") as f:
        f.write(_claims_text([_line(结算单号="BC1")]))
        f.write("BC2,")
        for _ in range(100):  # 100 MB, never a 100 MB string here (this process's memory is not measured)
            f.write("x" * 1_000_000)
        f.write("\n")
        f.write(_line(结算单号="BC3") + "\n")
    code = ("from xnh import sync; from xnh.store import db; "
            f"r = sync.run(db.open_db({str(tmp_path / 'x.db')!r}), 'claims', {str(path)!r}); "
            "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1]; "
            "print(r.inserted, r.rejected, hwm)")
    out = subprocess.run([sys.executable, "-c", code], env=dict(os.environ, XNH_DB=str(tmp_path / "x.db")),
                         capture_output=True, text=True, check=True).stdout.split()
    inserted, rejected, peak_kib = map(int, out)
    assert (inserted, rejected) == (2, 1)
    assert peak_kib < 100 * 1024, f"peak {peak_kib // 1024} MB for a 100 MB line"
    report = list(csv.reader(open(f"{path}.rejected.csv", encoding="utf-8-sig")))
    assert report[1][:3] == ["3", "", "行太长(超过64KB)"]


@pytest.mark.parametrize("content,words", [
    (lambda: ("x" * (read.MAX_LINE_BYTES + 10) + "\n").encode(), "超过64KB"),  # the header itself
    (lambda: b"\x89PNG\r\n\x1a\n\x00\x00", "不是CSV表格文件"),
    (lambda: ",".join(CLAIM_HEADER[:5]).encode() + b"\n", "缺少列"),
    (lambda: b"", "文件是空的"),
    (lambda: ('"' + ",".join(CLAIM_HEADER) + "\n").encode(), "不是CSV表格文件"),
])
def test_a_broken_file_is_refused_with_one_line(db, tmp_path, content, words):
    path = tmp_path / "broken.csv"
    path.write_bytes(content())
    with pytest.raises(sync.SyncError) as e:
        sync.run(db, "claims", path)
    assert words in str(e.value) and "\n" not in str(e.value)
    assert table_count(db, "sync_runs") == 0


def test_an_undecodable_line_is_rejected(db, tmp_path):
    path = tmp_path / "claims.csv"
    text = _claims_text(FILLER[:2] + [_line(结算单号="BC1")] + FILLER[2:4])
    data = text.encode("utf-8").replace("王小明".encode(), "王小明".encode(), 1)
    lines = data.split(b"\n")
    lines[3] = lines[3].replace("王小明".encode(), b"\xff\xfe")
    path.write_bytes(b"\n".join(lines))
    result = sync.run(db, "claims", path)
    assert (result.inserted, result.rejected) == (4, 1)
    assert db.execute('select line, reason from rejected_rows').fetchone() == (4, "编码不对(不是utf-8)")


# -- the report ------------------------------------------------------------------------------------------

def test_the_report_neutralises_formulas_uses_the_exports_words_and_is_private(db, tmp_path):
    rows = [claim(结算单号="BC1", 姓名="=HYPERLINK(\"http://x\")", 状态="已经给了"),
            claim(结算单号="BC2", 姓名="+1", 医疗机构="@SUM(A1)", 拒付原因="-2", 总费用="abc")]
    path = write_csv(tmp_path / "c.csv", CLAIM_HEADER, rows)
    os.umask(0o022)
    result = sync.run(db, "claims", path)
    report = Path(result.report)
    assert report.is_absolute() and stat.S_IMODE(report.stat().st_mode) == 0o600
    table = list(csv.reader(open(report, encoding="utf-8-sig")))
    assert table[0] == ["行号", "出错的列", "原因", *CLAIM_HEADER]
    first, second = (dict(zip(table[0], row)) for row in table[1:])
    assert first["姓名"] == "'=HYPERLINK(\"http://x\")" and first["原因"] == "未知状态: 已经给了"
    assert (second["姓名"], second["医疗机构"], second["拒付原因"]) == ("'+1", "'@SUM(A1)", "'-2")
    assert not any(cell[:1] in "=+-@" for row in table for cell in row if cell)
    assert "township" not in report.read_text(encoding="utf-8-sig")


def test_a_report_left_by_a_killed_sync_is_removed_by_the_next(db, tmp_path):
    path = write_csv(tmp_path / "c.csv", CLAIM_HEADER, [claim(状态="已经给了")])
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    left = tmp_path / f"c.csv.rejected.csv.{dead}.tmp"
    left.write_text("行号,出错的列,原因\n2,姓名,王小明 529901195504260016\n", encoding="utf-8")
    other = tmp_path / f"other.csv.rejected.csv.{os.getpid()}.tmp"  # a sync still running: left alone
    other.write_text("x", encoding="utf-8")
    sync.run(db, "claims", path)
    assert not left.exists() and other.exists()
    assert not list(tmp_path.glob(f"*.{os.getpid()}.tmp.*"))


# -- the summary tells the truth -------------------------------------------------------------------------

def test_the_summary_counts_old_payments_as_skipped_not_queued(db, tmp_path):
    sync.run(db, "enrollment", write_csv(tmp_path / "e.csv", ENROLLMENT_HEADER, [member()]))
    paid = [claim(结算单号=f"BC{i}", 状态="已拨付", 补偿金额="100.00", 拨付日期=date, 更新时间=f"{date}T09:00:00")
            for i, date in enumerate(["2026-01-05", "2026-02-05", "2026-06-01"])]
    result = sync.run(db, "claims", write_csv(tmp_path / "c.csv", CLAIM_HEADER, paid))
    assert (result.notices_queued, result.notices_skipped) == (1, 2)
    assert "payment notifications queued: 1, skipped as paid more than 30 days ago: 2" in result.summary_lines()
    old = [claim(结算单号="BC9", 状态="已拨付", 补偿金额="100.00", 拨付日期="2026-01-05")]
    lines = sync.run(db, "claims", write_csv(tmp_path / "c2.csv", CLAIM_HEADER, old)).summary_lines()
    assert "payment notifications queued: 0, skipped as paid more than 30 days ago: 1" in lines


def test_the_report_path_is_printed_absolute(tmp_path, monkeypatch):
    monkeypatch.setenv("XNH_DB", str(tmp_path / "cli.db"))
    monkeypatch.chdir(tmp_path)
    write_csv(tmp_path / "c.csv", CLAIM_HEADER, [claim(状态="已经给了")])
    out = CliRunner().invoke(cli, ["sync", "claims", "c.csv", "--no-progress"])
    assert out.exit_code == 0, out.output
    assert f"rejected rows written to {tmp_path / 'c.csv.rejected.csv'}" in out.output
    assert f"补偿记录 {tmp_path / 'c.csv'}" in out.output
