"""The console's words and numbers (bot/console/words.py, charts.py): reasons, actions and statuses in
Chinese, numbers with 万 and 亿, chart labels that never overlap."""
import re
from decimal import Decimal

import pytest

from xnh.bot.console import charts, words


@pytest.mark.parametrize("value, shown", [(0, "0"), (9876, "9,876"), (12345, "1.2万"), (1234567, "123.5万"),
                                          (250_000_000, "2.5亿"), (Decimal("35000.00"), "3.5万"),
                                          (Decimal("12.50"), "12.5"), (-20000, "-2万")])
def test_numbers_the_chinese_way(value, shown):
    assert words.wan(value) == shown


@pytest.mark.parametrize("reason, zh", [
    ("bad number", "号码无效"), ("opted out", "已退订"), ("old payment", "拨付已超过30天,不再通知"),
    ("server error 503 (may have been sent), gave up after 3 attempts", "平台出错(503),可能已发出"),
    ("error 30008", "平台错误码 30008"), ("no telegram credentials", "未配置telegram发送账号"),
    ("模板错误 / template error: x", "模板错误"),
])
def test_reasons_in_chinese(reason, zh):
    assert words.reason_zh(reason) == zh


def test_every_audited_action_has_chinese_words():
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "xnh"
    actions = set()
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) in ("audit", "act"):
                literal = [a for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
                if getattr(node.func, "attr", getattr(node.func, "id", "")) == "audit" and len(node.args) >= 3:
                    literal = [node.args[2]] if isinstance(node.args[2], ast.Constant) else []
                elif literal:
                    literal = literal[:1]
                actions.update(a.value for a in literal)
    assert actions and actions <= set(words.ACTIONS), sorted(actions - set(words.ACTIONS))


@pytest.mark.parametrize("months", [12, 24])
def test_month_labels_and_totals_never_overlap(months):
    columns = [f"{2026 + m // 12}-{m % 12 + 1:02d}" for m in range(months)]
    stacks = {"county": {m: Decimal("123456789.12") for m in columns}, "township": {m: Decimal("98765432") for m in columns}}
    svg = str(charts.stacked_columns(columns, stacks, "t", {}, "元"))
    col_w = (640 - 60 - 10) / months
    for kind, size in (("label", 11), ("total", 10)):
        drawn = [(float(x), text) for x, text in re.findall(rf'<text x="([\d.]+)"[^>]*class="col-{kind}">([^<]+)<', svg)]
        for (x1, a), (x2, b) in zip(drawn, drawn[1:]):
            assert x2 - x1 >= (charts.text_width(a, size) + charts.text_width(b, size)) / 2, (a, b)
        assert all(charts.text_width(t, size) <= col_w or kind == "label" for _, t in drawn)
    if months == 12:
        assert "2.2亿" in svg and "12月" in svg  # totals in 亿, every month named
