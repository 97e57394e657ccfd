"""xnh/sync/check.py: a block checked column by column (check_block) gives exactly what the one-row checks
give (Checker.claim): the same values, or the same rejection (column and reason)."""
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xnh.sync import check as sync
from xnh.sync.read import STRIP, Block
from xnh.idnumber import check_digit
from xnh.money import to_money

GOOD = ["BC9000000001", "HH9000001-01", "王小明", "529901195504260016", "住院", "示范县人民医院", "县级医院",
        "2026-03-01", "2026-03-09", "12500.00", "12000.00", "", "已受理", "", "", "", "2026-03-10T09:00:00"]
_BODY = "52990119550426001"


def _outcome(check, cells):
    try:
        return check(list(cells))
    except sync.Bad as bad:
        return ("rejected", *bad.args)


def _spaced(values):
    """Each value as written, and with the spaces and case a clerk's export may add."""
    return st.sampled_from(values).flatmap(
        lambda v: st.sampled_from([v, f" {v}", f"{v} ", f"\t{v}", v.lower()]))


CELLS = {
    0: _spaced(["BC1", "BC9000000001", "", " ", "X" * 64, "X" * 65]),
    1: _spaced(["HH9000001-01", "HH9000002", "", "H" * 65]),
    2: _spaced(["王小明", "", "李 四"]),
    3: _spaced(["529901195504260016", "52990119550426001X", _BODY + check_digit(_BODY), "529901195504260017",
                "5299011955042600", "529901199913320019", "", "x"]),
    4: _spaced(sorted(sync.VISIT_TYPES) + ["体检", ""]),
    5: _spaced(["示范县人民医院", ""]),
    6: _spaced(["县级医院", "乡镇卫生院", "省地级指定", "卫生部直属", ""]),
    7: _spaced(["2026-03-01", "2026/3/1", "20260301", "2026年3月1日", "2026-13-45", "三月一日", "", "1899-01-01"]),
    8: _spaced(["2026-03-09", "2026-02-01", "2026-03-01", "", "2026-02-30"]),
    9: _spaced(["12500.00", "12500", "12,500.5", "0.50", "007.5", "99.99", "100", "-5.00", "12.345", "", "三千"]),
    10: _spaced(["12000.00", "", "100.00", "abc"]),
    11: _spaced(["", "100.00", "99.99", "100", "12500.00", "12500.01", "8400.00", "0.5", "1e3"]),
    12: _spaced(sorted(sync.CLAIM_STATUSES) + ["已经给了", ""]),
    13: _spaced(["", "缺少转诊证明"]),
    14: _spaced(["", "2026-04-01", "2026-02-30"]),
    15: _spaced(["", "一卡通"]),
    16: _spaced(["2026-03-10T09:00:00", "2026-03-10 09:00", "2026-03-10T09:00:00+00:00", "2026-03-10", "昨天", ""]),
}
# valid cells, several of them canonical: a row of these alone passes (or fails only a row rule)
VALID = {
    0: ["BC1", "BC9000000001"], 1: ["HH9000001-01", "HH9000002"], 2: ["王小明", ""],
    3: ["529901195504260016", _BODY + check_digit(_BODY), ""], 4: sorted(sync.VISIT_TYPES), 5: ["示范县人民医院"],
    6: ["县级医院", "乡镇卫生院"], 7: ["2026-03-01", "2026-03-05"], 8: ["2026-03-09", "", "2026-03-01"],
    9: ["12500.00", "99.99", "100.00", "0.50"], 10: ["12000.00", ""], 11: ["", "100.00", "99.99", "12500.01", "0.49"],
    12: sorted(sync.CLAIM_STATUSES), 13: ["", "缺少转诊证明"], 14: ["", "2026-04-01"], 15: ["", "一卡通"],
    16: ["2026-03-10T09:00:00", "2026-03-10 09:00"],
}
ROWS = st.builds(
    lambda base, changes: [changes.get(i, base[i]) for i in range(17)],
    st.fixed_dictionaries({i: st.sampled_from(v) for i, v in VALID.items()}),
    st.dictionaries(st.integers(0, 16), st.just(None), max_size=2).flatmap(
        lambda keys: st.fixed_dictionaries({i: CELLS[i] for i in keys})))


def _block(rows):
    spaced = any(ch in cell for cells in rows for cell in cells for ch in STRIP)
    return Block(rows=[list(r) for r in rows], lines=list(range(2, 2 + len(rows))), texts=[None] * len(rows),
                 spaced=spaced)


def _by_rows(rows):
    """Each row through the one-row checks of a fresh checker: values, or ("rejected", column, reason)."""
    return [_outcome(sync.Checker().claim, cells) for cells in rows]


def _columns_block(rows):
    """The same rows as the CSV reader gives a block whose lines all have 17 cells: by column."""
    block = _block(rows)
    return Block(rows=None, lines=block.lines, texts=[",".join(r) for r in rows], spaced=block.spaced,
                 cols=[list(c) for c in zip(*rows)], width=17)


def _by_block(check, rows, by_columns=False):
    block = _columns_block(rows) if by_columns else _block(rows)
    checked = sync.check_block(check, "claims", block, list(range(17)))
    got = dict(zip(checked.lines, checked.values))
    got.update({line: ("rejected", column, reason) for line, column, reason, _ in checked.rejected})
    return [got[line] for line in range(2, 2 + len(rows))]


@settings(max_examples=400, deadline=None)
@given(st.lists(ROWS, min_size=1, max_size=8))
def test_block_checks_equal_the_one_row_checks(rows):
    """A block checked column by column (twice through one checker: the second time its caches are warm)
    gives, row by row, what the one-row checks give: the same values or the same rejection."""
    check = sync.Checker()
    expected = _by_rows(rows)
    assert _by_block(check, rows) == expected
    assert _by_block(check, rows) == expected
    assert _by_block(sync.Checker(), rows, by_columns=True) == expected


def test_a_clean_block_takes_no_one_row_check():
    check = sync.Checker()
    rows = [GOOD, [*GOOD[:9], "99.99", "", "", *GOOD[12:]]]
    columns = [tuple(c) for c in zip(*rows)]
    suspects = set()
    values = check.claims_columns(columns, suspects)
    assert suspects == set()
    assert list(zip(*values)) == _by_rows(rows)
    other = [[*GOOD[:9], "12,500", *GOOD[10:]]]  # not as written: read per value, still no one-row check
    suspects = set()
    values = check.claims_columns([tuple(c) for c in zip(*other)], suspects)
    assert suspects == set() and values[10] == ["12500.00"]
    late = [[*GOOD[:7], "2026-06-17", "", *GOOD[9:]]]  # after tomorrow (XNH_TODAY 2026-06-15): only one-row decides
    suspects = set()
    check.claims_columns([tuple(c) for c in zip(*late)], suspects)
    assert suspects == {0}
    assert _by_block(check, late) == _by_rows(late) == [("rejected", "入院日期", "入院日期晚于今天: 2026-06-17")]


@pytest.mark.parametrize("a,b,greater", [
    ("100.00", "99.99", True), ("99.99", "100.00", False), ("100.00", "100.00", False),
    ("0.50", "0.49", True), ("0.00", "0.01", False), ("12500.01", "12500.00", True), ("9.00", "10.00", False),
])
def test_money_greater_table(a, b, greater):
    assert sync.money_greater(a, b) is greater


@given(st.decimals(min_value=0, max_value=Decimal("999999999.99"), places=2),
       st.decimals(min_value=0, max_value=Decimal("999999999.99"), places=2))
def test_money_greater_is_decimal_comparison(a, b):
    """On amounts as _Checker.amount writes them (str of to_money), it is Decimal's >."""
    a, b = str(to_money(a)), str(to_money(b))
    assert sync.money_greater(a, b) is (Decimal(a) > Decimal(b))


_KEY_CELL = st.sampled_from(["", "2026", " 2025", "２０２６", "BC1", "HH1-01", "HH1-01\u3000", "王", "20x6"])


@settings(max_examples=200, deadline=None)
@given(st.integers(2, 5).flatmap(lambda width: st.tuples(
    st.lists(st.lists(_KEY_CELL, min_size=width, max_size=width), min_size=1, max_size=6),
    st.permutations(range(width)), st.booleans())))
def test_keys_of_a_block_skipped_whole_are_read_as_from_its_columns(case):
    """A block a re-sync skips whole gives its keys by one regular expression over its text (never split
    into columns): the same keys, in the same order, as from its columns, for either kind and wherever
    the export puts its columns."""
    rows, positions, spaced = case
    texts = [",".join(r) for r in rows]

    def block():
        return Block(rows=[], lines=list(range(2, 2 + len(rows))), texts=texts, spaced=spaced,
                     width=len(rows[0]), text="\n".join(texts))

    split = block()
    assert split.columns is not None and not split.split_later()
    some = [(0, 1), (len(rows) // 2, len(rows))]
    for kind in ("claims", "enrollment"):
        for ranges in (None, some):
            whole = block()
            assert (sync.block_keys(kind, whole, list(positions), ranges)
                    == sync.block_keys(kind, split, list(positions), ranges))
            assert whole.split_later()  # the keys were read without splitting the block
        part = block().only(some)
        assert part.split_later() and part.columns == split.only(some).columns
