"""Property (hypothesis): an export that passes the checks imports to the same tables whatever the order of
its rows and however it is split across two runs of `xnh sync` (members, enrollments, claims, claim history;
not the payment notices, which are derived at each sync from the phones known then: a claim synced before
its household's enrollment gets none, xnh/store/outbox.py)."""
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xnh import sync
from xnh.idnumber import check_digit
from xnh.store import db as store
from tests.test_sync import CLAIM_HEADER, ENROLLMENT_HEADER, write_csv

MEMBERS = [f"HH00{h}-0{m}" for h in range(1, 4) for m in range(1, 3)]
TIMES = ["2025-12-30T18:00:00", "2026-01-05 09:00", "2026/1/5 9:00"]  # the last two are one time: ties


def _id(n: int) -> str:
    body = f"5299011960{1 + n % 12:02d}{1 + n % 27:02d}{n:03d}"
    return body + check_digit(body)


def _spaced(text: str):
    return st.sampled_from([text, f" {text}", f"{text}\u3000"])


ENROLLMENT = st.fixed_dictionaries({
    "年度": st.sampled_from(["2025", "2026"]), "参合证号": st.sampled_from(MEMBERS),
    "户号": st.sampled_from(["HH001", "HH002", "HH009"]), "姓名": st.sampled_from(["王小明", "李四"]),
    "性别": st.sampled_from(["男", "女"]), "身份证号": st.sampled_from([_id(1), _id(2), _id(3).lower(), ""]),
    "与户主关系": st.just("户主"),
    "联系电话": st.sampled_from(["13800009001", "138-0000-9002", "１３８００００９００３", ""]),
    "乡镇": st.just("西河乡"), "村": st.just("西河村"), "人员类别": st.sampled_from(["普通", "五保户"]),
    "缴费金额": st.sampled_from(["30.00", "30", "３０．００", ""]), "缴费日期": st.sampled_from(["2025-11-03", "2025/11/3", ""]),
    "参合状态": st.sampled_from(["已参合", "未缴费"]), "更新时间": st.sampled_from(TIMES),
}).flatmap(lambda row: st.fixed_dictionaries({k: _spaced(v) for k, v in row.items()}))

CLAIM = st.fixed_dictionaries({
    "参合证号": st.sampled_from(MEMBERS), "姓名": st.just("王小明"), "身份证号": st.sampled_from([_id(1), ""]),
    "就诊类型": st.sampled_from(["住院", "门诊"]), "医疗机构": st.just("示范县人民医院"),
    "机构级别": st.sampled_from(["县级医院", "乡镇卫生院"]), "入院日期": st.sampled_from(["2026-03-01", "2026/3/2"]),
    "出院日期": st.sampled_from(["2026-03-09", ""]), "总费用": st.sampled_from(["12500.00", "12,500", "１２５００"]),
    "可报费用": st.sampled_from(["12000.00", ""]), "补偿金额": st.sampled_from(["", "8400.00", "8400"]),
    "状态": st.sampled_from(["已受理", "审核中", "已拨付"]), "拒付原因": st.just(""),
    "拨付日期": st.sampled_from(["", "2026-06-01", "2026-01-01"]), "拨付方式": st.sampled_from(["", "一卡通"]),
    "更新时间": st.sampled_from(TIMES),
})


def _unique(rows, key):
    seen, out = set(), []
    for row in rows:
        k = key(row)
        if k not in seen:
            seen.add(k)
            out.append(row)
    return out


EXPORT = st.tuples(
    st.lists(ENROLLMENT, max_size=10).map(
        lambda rows: _unique(rows, lambda r: (r["年度"].strip(" \u3000"), r["参合证号"].strip(" \u3000")))),
    st.lists(CLAIM, max_size=8).map(lambda rows: [{**r, "结算单号": f"BC{i}"} for i, r in enumerate(rows)]),
)


def _tables(db) -> dict:
    return {
        "members": db.execute("select * from members order by member_id").fetchall(),
        "enrollments": db.execute("select * from enrollments order by year, member_id").fetchall(),
        "claims": db.execute("select * from claims order by claim_id").fetchall(),
        "history": sorted(db.execute("select claim_id, old_status, status, changed_at from claim_history").fetchall()),
    }


def _import(folder: Path, name: str, parts) -> dict:
    db = store.open_db(str(folder / f"{name}.db"))
    try:
        for i, (enrollment, claims) in enumerate(parts):
            for kind, header, rows in (("enrollment", ENROLLMENT_HEADER, enrollment), ("claims", CLAIM_HEADER, claims)):
                result = sync.run(db, kind, write_csv(folder / f"{name}_{i}_{kind}.csv", header, rows))
                assert result.rejected == 0, result.summary_lines()
        return _tables(db)
    finally:
        db.close()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(EXPORT, st.randoms(use_true_random=False), st.integers(0, 100), st.integers(0, 100))
def test_same_tables_whatever_the_order_and_the_split(export, rnd, cut_e, cut_c):
    enrollment, claims = export
    shuffled_e, shuffled_c = enrollment[:], claims[:]
    rnd.shuffle(shuffled_e)
    rnd.shuffle(shuffled_c)
    ce, cc = cut_e * len(enrollment) // 100, cut_c * len(claims) // 100
    with tempfile.TemporaryDirectory() as folder:
        whole = _import(Path(folder), "whole", [(enrollment, claims)])
        split = _import(Path(folder), "split", [(shuffled_e[:ce], shuffled_c[:cc]), (shuffled_e[ce:], shuffled_c[cc:])])
    assert split == whole
