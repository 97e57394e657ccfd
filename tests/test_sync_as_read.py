"""A block whose every cell its checks leave as written goes to the writer as the lines it was read from
("text" events: the household and the level's key are computed in SQL), any other block as checked values
("rows" events). Both ways must give the same tables: the same files are imported once as they come and
once with every block sent as checked values, and every county table is compared."""
import csv
import random
from pathlib import Path

import pytest

from xnh import sync
from xnh.idnumber import check_digit
from xnh.store import db as store
from xnh.sync import check, pipe, read, write
from tests.test_sync import CLAIM_HEADER, ENROLLMENT_HEADER

LEVELS = ["县级医院", "乡镇卫生院", "省地级指定", "县外非定点", "村卫生室"]
MEMBERS = ["HH1-01", "HH1-02", "HH2-01", "HH3", "HH4-01-02", "-5", "HH6-"]  # no '-', two, first, last


def _id(r: random.Random) -> str:
    body = f"5299011960{r.randint(1, 12):02d}{r.randint(1, 28):02d}{r.randint(0, 999):03d}"
    return body + check_digit(body)


def _claim(r: random.Random, i: int, member: str, newer: bool = False) -> dict:
    status = r.choice(["已受理", "审核中", "审核通过", "已拨付", "未通过"])
    return {"结算单号": f"BC{i:05d}", "参合证号": member, "姓名": r.choice(["王小明", "李四", "O'Neil"]),
            "身份证号": r.choice([_id(r), ""]), "就诊类型": r.choice(["住院", "门诊", "住院分娩"]),
            "医疗机构": r.choice(["示范县人民医院", "东山镇卫生院"]), "机构级别": r.choice(LEVELS),
            "入院日期": "2026-03-01", "出院日期": r.choice(["2026-03-09", ""]), "总费用": "12500.00",
            "可报费用": r.choice(["12000.00", ""]), "补偿金额": "8400.00" if status in ("审核通过", "已拨付") else "",
            "状态": status, "拒付原因": "缺少转诊证明" if status == "未通过" else "",
            "拨付日期": "2026-04-01" if status == "已拨付" else "", "拨付方式": "一卡通" if status == "已拨付" else "",
            "更新时间": "2026-05-01T09:00:00" if newer else "2026-04-01T09:00:00"}


def _member(r: random.Random, member: str, year: str) -> dict:
    return {"年度": year, "参合证号": member, "户号": "HX" + member.partition("-")[0], "姓名": "王小明",
            "性别": r.choice(["男", "女"]), "身份证号": _id(r), "与户主关系": "户主",
            "联系电话": r.choice(["13800009001", ""]), "乡镇": "西河乡", "村": "西河村", "人员类别": "普通",
            "缴费金额": "30.00", "缴费日期": "2025-11-03", "参合状态": "已参合", "更新时间": f"{year}-01-05T09:00:00"}


def _write(path: Path, header: list[str], rows: list[dict], extra: bool) -> Path:
    with open(path, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(header + (["备注"] if extra else []))
        for row in rows:
            w.writerow([row[c] for c in header] + (["x"] if extra else []))
    return path


def _files(folder: Path, order: str, members_first: bool):
    """(kind, path) to import in turn: enrollment (when members_first), a first claims file (a 结算单号
    given twice), a second one (newer rows, one 结算单号 moved to another member, new claims)."""
    r = random.Random(3)
    claims_header = list(CLAIM_HEADER) if order == "natural" else list(reversed(CLAIM_HEADER))
    enrollment_header = list(ENROLLMENT_HEADER) if order == "natural" else list(reversed(ENROLLMENT_HEADER))
    extra = order == "extra column"
    first = [_claim(r, i, r.choice(MEMBERS)) for i in range(300)]
    first.append(dict(first[17], 状态="审核中"))  # a 结算单号 twice: every row of it rejected
    second = [_claim(r, i, first[i]["参合证号"], newer=True) for i in range(0, 300, 3)]
    second.append(dict(first[40], 参合证号="HH9-01", 更新时间="2026-06-01T09:00:00"))  # moved: rejected
    second += [_claim(r, i, r.choice(MEMBERS)) for i in range(300, 420)]
    files = []
    if members_first:
        enrollment = [_member(r, m, y) for y in ("2025", "2026") for m in MEMBERS]
        files.append(("enrollment", _write(folder / "e.csv", enrollment_header, enrollment, extra)))
    files.append(("claims", _write(folder / "c1.csv", claims_header, first, extra)))
    files.append(("claims", _write(folder / "c2.csv", claims_header, second, extra)))
    return files


def _tables(db) -> dict:
    return {t: db.execute(f"select * from county.{t} order by 1, 2").fetchall()
            for t in ("members", "enrollments", "claims", "claim_history")} | {
        "rejected": db.execute('select line, "column", reason, raw from rejected_rows order by id').fetchall(),
        "outbox": db.execute("select recipient, ref, text, status from outbox order by id").fetchall()}


@pytest.mark.parametrize("order", ["natural", "reversed", "extra column"])
@pytest.mark.parametrize("members_first", [False, True])
@pytest.mark.parametrize("reader_process", [False, True])
def test_rows_as_read_and_as_checked_give_the_same_tables(tmp_path, monkeypatch, order, members_first,
                                                          reader_process):
    monkeypatch.setenv("XNH_TODAY", "2026-06-15")
    monkeypatch.setattr(read, "BLOCK_MASK", 0x1F)  # many blocks
    monkeypatch.setattr(write, "ROWS_PER_STATEMENT", 8)  # whole statements and rows one by one
    if reader_process:
        monkeypatch.setattr(pipe, "PARALLEL_MIN_BYTES", 0)
    files = _files(tmp_path, order, members_first)
    sent = []
    real_check = pipe.check_block

    def checked(*args, as_read: bool):
        out = real_check(*args)
        sent.append(out.text is not None)
        if not as_read:
            out.text = None
        return out

    snapshots, results = [], []
    for as_read in (True, False):
        monkeypatch.setattr(pipe, "check_block", lambda *a, as_read=as_read: checked(*a, as_read=as_read))
        db = store.open_db(str(tmp_path / f"{as_read}.db"))
        results.append([(r.inserted, r.updated, r.unchanged, r.rejected)
                        for r in (sync.run(db, kind, path) for kind, path in files)])
        snapshots.append(_tables(db))
        db.close()
    assert results[0] == results[1]
    assert results[0][-2:] == [(299, 0, 0, 2), (120, 100, 0, 1)]
    assert snapshots[0] == snapshots[1]
    claims = {row[0]: row for row in snapshots[0]["claims"]}
    assert claims["BC00040"][1] != "HH9-01"  # the moved row was rejected
    if not reader_process:  # (the forked reader's calls are not seen here)
        assert any(sent) == (order != "extra column")  # the text path was taken where it can be


@pytest.mark.parametrize("changes, why", [
    ({"姓名": " 王小明"}, "a cell stripped"),
    ({"总费用": "12500"}, "an amount written as 12500.00"),
    ({"入院日期": "2026/3/1"}, "a date written as 2026-03-01"),
    ({"更新时间": "2026-04-01 09:00"}, "a time written as 2026-04-01T09:00:00"),
    ({"身份证号": "52990119600101001x"}, "an ID number's x made X"),
    ({"总费用": "abc"}, "a row rejected"),
])
def test_a_block_with_any_cell_changed_goes_as_checked_values(tmp_path, monkeypatch, changes, why):
    monkeypatch.setenv("XNH_TODAY", "2026-06-15")
    r = random.Random(1)
    rows = [_claim(r, i, "HH1-01") for i in range(5)]
    rows[2].update(changes)
    table = read.open_table(_write(tmp_path / "c.csv", list(CLAIM_HEADER), rows, False), "claims")
    try:
        events = [e[0] for e in pipe.events(table, "claims", set())]
    finally:
        table.close()
    assert events == ["rows"], why
    clean = read.open_table(_write(tmp_path / "clean.csv", list(CLAIM_HEADER), rows[:2], False), "claims")
    try:
        assert [e[0] for e in pipe.events(clean, "claims", set())] == ["text"]
    finally:
        clean.close()


def test_the_years_as_written_are_stored_as_numbers(tmp_path, monkeypatch):
    monkeypatch.setenv("XNH_TODAY", "2026-06-15")
    db = store.open_db(str(tmp_path / "x.db"))
    r = random.Random(2)
    sync.run(db, "enrollment", _write(tmp_path / "e.csv", list(ENROLLMENT_HEADER), [_member(r, "HH1-01", "2026")],
                                      False))
    assert db.execute("select typeof(year), year from county.enrollments").fetchall() == [("integer", 2026)]
    db.close()
    assert check.AS_WRITTEN["enrollment"] == tuple(range(len(ENROLLMENT_HEADER)))


def test_the_sender_keeps_the_order_flushes_on_close_and_reports_a_writer_gone():
    import multiprocessing
    import threading

    receive, send = multiprocessing.Pipe(duplex=False)
    got = []
    reader = threading.Thread(target=lambda: got.extend(receive.recv_bytes() for _ in range(40)))
    reader.start()
    sender = pipe.Sender(send)
    messages = [bytes([i]) * (100_000 + i) for i in range(40)]  # larger than a pipe holds, more than it queues
    for m in messages:
        sender.send(m)
    sender.close()
    reader.join(timeout=30)
    assert got == messages

    receive.close()  # the writer is gone
    sender = pipe.Sender(send)
    with pytest.raises(BrokenPipeError):
        for _ in range(100):
            sender.send(b"x" * 100_000)
    sender.close()  # returns: what is queued after the break is dropped
    send.close()
