"""Reading a county export: CSV in UTF-8 (with or without BOM) or GBK/GB18030 (detected), or .xlsx
(openpyxl), as a stream of (line, cells); the header found and the columns placed. A file that cannot
be read at all raises SyncError with a one-line reason."""
from __future__ import annotations

import codecs
import csv
import datetime as dt
from pathlib import Path

ENROLLMENT_COLUMNS = ("年度", "参合证号", "户号", "姓名", "性别", "身份证号", "与户主关系", "联系电话", "乡镇", "村",
                      "人员类别", "缴费金额", "缴费日期", "参合状态", "更新时间")
CLAIM_COLUMNS = ("结算单号", "参合证号", "姓名", "身份证号", "就诊类型", "医疗机构", "机构级别", "入院日期", "出院日期",
                 "总费用", "可报费用", "补偿金额", "状态", "拒付原因", "拨付日期", "拨付方式", "更新时间")
COLUMNS = {"enrollment": ENROLLMENT_COLUMNS, "claims": CLAIM_COLUMNS}
KIND_WORD = {"enrollment": "参合人员", "claims": "补偿记录"}


class SyncError(Exception):
    """The file cannot be read at all (missing, not a table, wrong columns, mixed encodings)."""



def _detect_encoding(path: Path) -> str:
    """utf-8-sig for a BOM, utf-8 when the file decodes strictly as UTF-8, else gb18030 (GBK's superset)."""
    with open(path, "rb") as f:
        head = f.read(8192)
        if head.startswith(codecs.BOM_UTF8):
            return "utf-8-sig"
        if b"\x00" in head or head.startswith(b"PK\x03\x04") or head.startswith(b"\xd0\xcf\x11\xe0"):
            raise SyncError(f"不是CSV表格文件 / not a CSV table: {path}")
        f.seek(0)
        decoder = codecs.getincrementaldecoder("utf-8")("strict")
        try:
            while chunk := f.read(1 << 20):
                decoder.decode(chunk)
            decoder.decode(b"", final=True)
            return "utf-8"
        except UnicodeDecodeError:
            pass
    decoder = codecs.getincrementaldecoder("gb18030")("strict")
    with open(path, "rb") as f:
        try:
            while chunk := f.read(1 << 20):
                decoder.decode(chunk)
            decoder.decode(b"", final=True)
        except UnicodeDecodeError as e:
            raise SyncError(f"无法识别文件编码(不是UTF-8也不是GBK) / unknown text encoding: {path}") from e
    return "gb18030"


def _csv_rows(path: Path, encoding: str):
    """(line number as an editor shows it, cells) for each CSV record after the header; header first."""
    f = open(path, encoding=encoding, newline="")
    try:
        reader = csv.reader(f)
        try:
            header = next(reader)
        except StopIteration:
            raise SyncError(f"文件是空的 / empty file: {path}") from None
        except csv.Error as e:
            raise SyncError(f"不是CSV表格文件 / not a CSV table: {path}: {e}") from None
        yield 1, header
        last = reader.line_num
        try:
            for cells in reader:
                yield last + 1, cells
                last = reader.line_num
        except csv.Error as e:
            raise SyncError(f"CSV格式错误,第{last + 1}行 / malformed CSV at line {last + 1}: {e}") from None
    finally:
        f.close()


def _cell_text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        if value.time() == dt.time(0):
            return value.date().isoformat()
        return value.isoformat(timespec="seconds")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)
    return str(value)


def _xlsx_rows(path: Path):
    """Rows of the first worksheet (row number = the spreadsheet's row number)."""
    from openpyxl import load_workbook

    try:
        wb = load_workbook(path, read_only=True, data_only=True)
    except Exception as e:  # openpyxl raises many kinds for a file that is not a workbook
        raise SyncError(f"无法打开Excel文件 / cannot open workbook: {path}: {e.__class__.__name__}") from None
    try:
        ws = wb.worksheets[0]
        for number, values in enumerate(ws.iter_rows(values_only=True), 1):
            yield number, [_cell_text(v) for v in values]
    finally:
        wb.close()


def open_table(path: Path, kind: str):
    """(encoding, column positions, rows iterator of (line, cells), estimated rows) or SyncError."""
    if not path.exists():
        raise SyncError(f"找不到文件 / file not found: {path}")
    if not path.is_file():
        raise SyncError(f"不是文件 / not a file: {path}")
    with open(path, "rb") as f:
        magic = f.read(4)
    if path.suffix.lower() in (".xlsx", ".xlsm") or magic.startswith(b"PK\x03\x04"):
        encoding, rows = "xlsx", _xlsx_rows(path)
    elif path.suffix.lower() == ".xls" or magic.startswith(b"\xd0\xcf\x11\xe0"):
        raise SyncError(f"不支持旧版.xls,请在Excel里另存为.xlsx或CSV / old .xls not supported, save as .xlsx or CSV: {path}")
    else:
        encoding = _detect_encoding(path)
        rows = _csv_rows(path, encoding)
    header_line, header = _header(rows, path)
    positions = _positions(header, kind, path)
    return encoding, positions, header_line, rows


def _header(rows, path):
    """The header row: the first of the first few non-blank rows that names most export columns (clerks'
    sheets often carry a title row above it), else the first non-blank row."""
    known = set(ENROLLMENT_COLUMNS) | set(CLAIM_COLUMNS)
    first = None
    for _ in range(10):
        for line, cells in rows:
            if any(c.strip() for c in cells):
                break
        else:
            break
        first = first or (line, cells)
        if sum(c.strip().lstrip("\ufeff") in known for c in cells) >= 5:
            return line, cells
    if first is None:
        raise SyncError(f"文件没有表头 / no header row: {path}")
    return first


def _positions(header: list[str], kind: str, path: Path) -> list[int]:
    names = [h.strip().lstrip("\ufeff") for h in header]
    want = COLUMNS[kind]
    missing = [c for c in want if c not in names]
    if missing:
        other = "claims" if kind == "enrollment" else "enrollment"
        if all(c in names for c in COLUMNS[other]):
            raise SyncError(f"这是{KIND_WORD[other]}文件,请用 xnh sync {other} / "
                            f"this is a {other} file, use `xnh sync {other}`: {path}")
        raise SyncError(f"缺少列 {','.join(missing)} / missing columns: {path}")
    return [names.index(c) for c in want]


def estimate_rows(path: Path, encoding: str) -> int:
    """Data rows, counted from newlines (CSV) or the sheet's dimension (xlsx); for the progress bar."""
    if encoding == "xlsx":
        try:
            from openpyxl import load_workbook

            wb = load_workbook(path, read_only=True)
            n = wb.worksheets[0].max_row or 0
            wb.close()
            return max(0, n - 1)
        except Exception:
            return 0
    n = 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            n += chunk.count(b"\n")
    return max(0, n - 1)

