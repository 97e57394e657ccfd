"""Reading a county export: CSV in UTF-8 (with or without BOM) or GBK/GB18030 (detected), or .xlsx
(openpyxl), as a stream of blocks of rows; the header found and the columns placed. A file that cannot
be read at all raises SyncError with a one-line reason.

The CSV reader is strict and bounded:
- one record is one line: a quote left open at the end of a line is an error of that line ("引号不成对"),
  never a field that swallows the lines after it (the county system's exports have no line breaks in
  cells; a cell with Alt+Enter from Excel is rejected with its line number);
- a line longer than MAX_LINE_BYTES is skipped as it streams past (never held in memory) and rejected
  with its line number; a header longer than that refuses the file;
- a line that does not decode in the file's encoding is rejected with its line number;
- memory is bounded by READ_BYTES + MAX_LINE_BYTES whatever the file's size.

Blocks end after a line whose CRC-32 ends in BLOCK_MASK's zero bits (or at MAX_BLOCK_LINES), and are cut
finer into parts at PART_MASK, so their boundaries depend on the lines' content, not their position: a row
added or changed in a re-sent export changes one part's digest and leaves the others' (xnh/sync/pipe.py
skips the parts already imported).
"""
from __future__ import annotations

import codecs
import csv
import datetime as dt
import hashlib
import zlib
from dataclasses import dataclass, field
from itertools import chain, compress, repeat
from operator import and_, not_
from pathlib import Path

ENROLLMENT_COLUMNS = ("年度", "参合证号", "户号", "姓名", "性别", "身份证号", "与户主关系", "联系电话", "乡镇", "村",
                      "人员类别", "缴费金额", "缴费日期", "参合状态", "更新时间")
CLAIM_COLUMNS = ("结算单号", "参合证号", "姓名", "身份证号", "就诊类型", "医疗机构", "机构级别", "入院日期", "出院日期",
                 "总费用", "可报费用", "补偿金额", "状态", "拒付原因", "拨付日期", "拨付方式", "更新时间")
COLUMNS = {"enrollment": ENROLLMENT_COLUMNS, "claims": CLAIM_COLUMNS}
KIND_WORD = {"enrollment": "参合人员", "claims": "补偿记录"}

MAX_LINE_BYTES = 64 << 10  # one row of an export is about 200 bytes
READ_BYTES = 1 << 20
BLOCK_MASK = 0x7FF  # a block ends after a line whose CRC-32 has these bits 0: 2,048 lines on average
MAX_BLOCK_LINES = 16_384
PART_MASK = 0x3F  # a part (the unit a re-sync skips) ends likewise: 64 lines on average
# cells are stripped of these (the same set on every path, so that a fast and a slow check agree)
STRIP = " \t\r\u3000\xa0"
_SPACES = {"utf-8": (b" ", b"\t", b"\r", "\u3000".encode(), "\xa0".encode()),
           "gb18030": (b" ", b"\t", b"\r", "\u3000".encode("gb18030"), "\xa0".encode("gb18030"))}


class SyncError(Exception):
    """The file cannot be read at all (missing, not a table, wrong columns, a header past the limits)."""


@dataclass
class Block:
    """Rows read from one stretch of the file.

    rows: the cells of each record; lines: each record's line number (as an editor shows it); texts: each
    record as written (the line, for the report); errors: [(line, reason, text)] of lines that are not
    records (unbalanced quote, too long, undecodable); spaced: some cell may need stripping (STRIP);
    parts: the stretch cut finer, each part's bytes hashed with the header's layout (None for xlsx, or when
    a line of the block is in error)."""

    rows: list
    lines: list
    texts: list
    errors: list = field(default_factory=list)
    spaced: bool = True
    parts: list | None = None  # [(start, end, digest)]: the block's parts, by record index (no errors only)
    cols: list | None = None  # the cells by column, when every line has as many (rows is then None)
    width: int = 0  # the cells of each line, with columns
    text: str | None = None  # those lines as one text, split into columns when they are first asked for
    joined: str | None = None  # that text, kept once split: the pipe sends it as it is when no cell changed

    @property
    def columns(self) -> list | None:
        """The cells by column (split on first use: a block a re-sync skips whole needs its keys alone)."""
        if self.cols is None and self.text is not None:
            flat = self.text.replace("\n", ",").split(",")
            self.cols, self.joined, self.text = [flat[i::self.width] for i in range(self.width)], self.text, None
        return self.cols

    def split_later(self) -> bool:
        """Whether the cells are one text not yet split into columns (every line as many cells, no quote)."""
        return self.text is not None

    def cells(self, i: int) -> list[str]:
        """The cells of record i."""
        return self.rows[i] if self.columns is None else [c[i] for c in self.columns]

    def only(self, ranges: list[tuple[int, int]]) -> "Block":
        """The block's records in `ranges` [(start, end)] alone (no errors, no parts)."""
        def take(seq):
            return list(chain.from_iterable(seq[a:b] for a, b in ranges))

        if self.split_later():  # those lines alone are split, when checked
            texts = take(self.texts)
            return Block(rows=[], lines=take(self.lines), texts=texts, spaced=self.spaced, width=self.width,
                         text="\n".join(texts))
        return Block(rows=take(self.rows) if self.columns is None else [], lines=take(self.lines),
                     texts=take(self.texts), spaced=self.spaced, width=self.width,
                     cols=None if self.columns is None else [take(c) for c in self.columns])


def _detect_encoding(path: Path) -> str:
    """utf-8-sig for a BOM; else decide on the first stretch with a non-ASCII byte: utf-8 when it decodes
    strictly as UTF-8, else gb18030 (GBK's superset). A line that does not decode later is rejected."""
    with open(path, "rb") as f:
        head = f.read(8192)
        if head.startswith(codecs.BOM_UTF8):
            return "utf-8-sig"
        if b"\x00" in head or head.startswith(b"PK\x03\x04") or head.startswith(b"\xd0\xcf\x11\xe0"):
            raise SyncError(f"不是CSV表格文件 / not a CSV table: {path}")
        f.seek(0)
        while chunk := f.read(READ_BYTES):
            if chunk.isascii():
                continue
            start = next(i for i, b in enumerate(chunk) if b > 0x7F)
            start = chunk.rfind(b"\n", 0, start) + 1
            lines = chunk[start:start + 65536].split(b"\n")[:-1] or [chunk[start:start + 65536]]
            for codec in ("utf-8", "gb18030"):  # the first that reads all lines but one in ten (rejected later)
                bad = sum(not _decodes(line, codec) for line in lines)
                if bad <= max(1, len(lines) // 10) and bad < len(lines):
                    return codec
            raise SyncError(f"无法识别文件编码(不是UTF-8也不是GBK) / unknown text encoding: {path}")
    return "utf-8"


def _decodes(line: bytes, codec: str) -> bool:
    try:
        line.decode(codec)
    except UnicodeDecodeError as e:
        return codec == "utf-8" and e.start >= len(line) - 3 and e.reason == "unexpected end of data"
    return True


class CsvSource:
    """The records of a CSV export as Blocks, after the header (read by `header()`)."""

    def __init__(self, path: Path, encoding: str):
        self.path, self.encoding = path, encoding
        self.codec = "utf-8" if encoding == "utf-8-sig" else encoding
        self.spaces = _SPACES["utf-8" if self.codec == "utf-8" else "gb18030"]
        self.f = open(path, "rb")
        if encoding == "utf-8-sig":
            self.f.read(3)
        self.line = 0  # the number of the last line read
        self.pending = ()  # (first number, raw lines) read with the header but not yet in a block
        self.salt = b""
        self._eof = False
        self._buf = b""

    def close(self) -> None:
        self.f.close()

    # -- raw lines -------------------------------------------------------------------------------

    def _raw_lines(self):
        """(first line's number, [bytes, or None for a line over the limit]), streaming."""
        buf = self._buf
        while True:
            data = self.f.read(READ_BYTES)
            if not data:
                if buf:
                    self.line += 1
                    yield self.line, [buf if len(buf) <= MAX_LINE_BYTES else None]
                return
            buf += data
            cut = buf.rfind(b"\n")
            if cut < 0:
                if len(buf) > MAX_LINE_BYTES:  # a line past the limit: skip to its end, holding none of it
                    self.line += 1
                    yield self.line, [None]
                    buf = self._skip_line()
                continue
            lines = buf[:cut].split(b"\n")
            buf = buf[cut + 1:]
            first = self.line + 1
            self.line += len(lines)
            if max(map(len, lines)) > MAX_LINE_BYTES:
                lines = [line if len(line) <= MAX_LINE_BYTES else None for line in lines]
            yield first, lines

    def _skip_line(self) -> bytes:
        """Read on to the end of an over-long line; returns what follows it."""
        while True:
            data = self.f.read(READ_BYTES)
            if not data:
                return b""
            cut = data.find(b"\n")
            if cut >= 0:
                return data[cut + 1:]

    # -- header and blocks -----------------------------------------------------------------------

    def header_rows(self):
        """(line, cells) of the first lines, for finding the header; the rest stays for blocks()."""
        self._stream = self._raw_lines()
        for first, lines in self._stream:
            for i, raw in enumerate(lines):
                number = first + i
                if raw is None:
                    raise SyncError(f"第{number}行超过{MAX_LINE_BYTES // 1024}KB,文件无法读取 / line {number} "
                                    f"is longer than {MAX_LINE_BYTES} bytes: {self.path}")
                cells = self._header_cells(raw, number)
                self.pending = (number + 1, lines[i + 1:])
                yield number, cells

    def _header_cells(self, raw: bytes, number: int) -> list[str]:
        try:
            text = raw.decode(self.codec).rstrip("\r")
        except UnicodeDecodeError:
            raise SyncError(f"第{number}行编码不对 / line {number} is not {self.codec}: {self.path}") from None
        try:
            return next(csv.reader([text], strict=True)) if text else []
        except csv.Error as e:
            raise SyncError(f"不是CSV表格文件 / not a CSV table: {self.path}: {e}") from None

    def blocks(self):
        """Blocks of the records after the header, with their digests."""
        numbers: list[int] = []
        raws: list = []
        sums: list[int] = []  # each line's CRC-32
        cuts: list[int] = []  # ends (exclusive) of blocks in raws

        def add(first: int, lines: list) -> None:
            base = len(raws)
            raws.extend(lines)
            numbers.extend(range(first, first + len(lines)))
            new = list(map(zlib.crc32, lines if None not in lines else [r or b"" for r in lines]))
            sums.extend(new)
            cuts.extend(base + i + 1 for i in compress(range(len(lines)),
                                                       map(not_, map(and_, new, repeat(BLOCK_MASK)))))

        if self.pending:
            add(*self.pending)
            self.pending = ()
        for first, lines in self._stream:
            add(first, lines)
            yield from self._emit(numbers, raws, sums, cuts, final=False)
        yield from self._emit(numbers, raws, sums, cuts, final=True)

    def _emit(self, numbers, raws, sums, cuts, final):
        while raws:
            end = cuts[0] if cuts else None
            if end is None or end > MAX_BLOCK_LINES:
                if len(raws) >= MAX_BLOCK_LINES:
                    end = MAX_BLOCK_LINES
                elif final:
                    end = len(raws)
                else:
                    return
            yield self._block(numbers[:end], raws[:end], sums[:end])
            del numbers[:end], raws[:end], sums[:end]
            cuts[:] = [c - end for c in cuts if c > end]

    def _parts(self, raws: list, sums: list) -> list:
        """(start, end, digest) of the parts of a block: content-defined like the blocks, finer."""
        ends = [i + 1 for i in compress(range(len(raws)), map(not_, map(and_, sums, repeat(PART_MASK))))]
        if not ends or ends[-1] != len(raws):
            ends.append(len(raws))
        key, parts, start = self.salt[:64], [], 0
        for end in ends:
            parts.append((start, end, hashlib.blake2b(b"\n".join(raws[start:end]), digest_size=16, key=key).digest()))
            start = end
        return parts

    def _block(self, numbers: list[int], raws: list, sums: list[int]) -> Block:
        block = Block(rows=[], lines=[], texts=[])
        if None in raws:  # lines over the limit
            keep = [i for i, r in enumerate(raws) if r is not None]
            for i, r in enumerate(raws):
                if r is None:
                    block.errors.append((numbers[i], f"行太长(超过{MAX_LINE_BYTES // 1024}KB)", ""))
            numbers, raws = [numbers[i] for i in keep], [raws[i] for i in keep]
        data = b"\n".join(raws)
        if not block.errors:
            block.parts = self._parts(raws, sums)
        if b"\r" in data:
            data = data.translate(None, b"\r")  # CRLF line ends (a CR inside a cell goes too)
        block.spaced = any(s[:1] in data and s in data for s in self.spaces)  # memchr first: fast
        whole = None
        try:
            whole = data.decode(self.codec)
            texts = whole.split("\n")
        except UnicodeDecodeError:
            texts = []
            for number, raw in zip(numbers, raws):
                raw = raw.rstrip(b"\r")
                try:
                    texts.append(raw.decode(self.codec))
                except UnicodeDecodeError:
                    texts.append(None)
                    block.errors.append((number, f"编码不对(不是{self.encoding})", raw.decode(self.codec, "replace")))
        if b'"' not in data and None not in texts:
            counts = set(map(str.count, texts, repeat(",")))
            if len(counts) == 1:  # as many cells on every line: split once, columns by slicing
                block.width = counts.pop() + 1
                block.text = whole if whole is not None else "\n".join(texts)  # split into columns when asked
                block.lines, block.texts = numbers, texts
                return block
            rows = [t.split(",") for t in texts]
        else:
            rows = None
        if rows is None:
            rows = []
            for i, t in enumerate(texts):
                if t is None:
                    rows.append(None)
                elif '"' not in t:
                    rows.append(t.split(","))
                else:
                    try:
                        rows.append(next(csv.reader([t], strict=True)))
                    except csv.Error as e:
                        rows.append(None)
                        reason = "引号不成对" if "unexpected end" in str(e) else f"CSV格式错误: {e}"
                        block.errors.append((numbers[i], reason, t))
            keep = [i for i, r in enumerate(rows) if r is not None]
            if len(keep) < len(rows):
                numbers, texts, rows = [numbers[i] for i in keep], [texts[i] for i in keep], [rows[i] for i in keep]
        block.rows, block.lines, block.texts = rows, numbers, texts
        if block.errors:  # lines left out: the parts' indexes no longer hold, and they are not clean anyway
            block.parts = None
        return block


class XlsxSource:
    """The rows of the first worksheet (row number = the spreadsheet's row number), as Blocks."""

    def __init__(self, path: Path):
        from openpyxl import load_workbook

        self.path = path
        try:
            self.wb = load_workbook(path, read_only=True, data_only=True)
        except Exception as e:  # openpyxl raises many kinds for a file that is not a workbook
            raise SyncError(f"无法打开Excel文件 / cannot open workbook: {path}: {e.__class__.__name__}") from None
        self._rows = enumerate(self.wb.worksheets[0].iter_rows(values_only=True), 1)
        self.salt = b""

    def close(self) -> None:
        self.wb.close()

    def header_rows(self):
        for number, values in self._rows:
            yield number, [_cell_text(v) for v in values]

    def blocks(self):
        block = Block(rows=[], lines=[], texts=[])
        for number, values in self._rows:
            cells = [_cell_text(v) for v in values]
            block.rows.append(cells)
            block.lines.append(number)
            block.texts.append(None)
            if len(block.rows) >= 4096:
                yield block
                block = Block(rows=[], lines=[], texts=[])
        if block.rows:
            yield block


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


@dataclass
class Table:
    """An export opened: its encoding, header, the positions of the export's columns, and its source."""

    path: Path
    kind: str
    encoding: str
    header: list
    positions: list
    header_line: int
    source: object

    def blocks(self):
        return self.source.blocks()

    def reopen(self) -> None:
        """Open the file again, so that blocks() starts from the first row once more."""
        self.source.close()
        fresh = open_table(self.path, self.kind)
        if fresh.positions != self.positions:
            fresh.close()
            raise SyncError(f"文件在导入过程中被改动 / the file changed during the import: {self.path}")
        self.source = fresh.source

    def close(self) -> None:
        self.source.close()

    def __iter__(self):
        """(encoding, positions, header line, self): the shape open_table had, which the console's upload
        check unpacks (`encoding, _, _, rows = open_table(...)`; `rows.close()`)."""
        return iter((self.encoding, self.positions, self.header_line, self))


def open_table(path: Path, kind: str) -> Table:
    """The export at `path` opened for reading as `kind`, or SyncError."""
    if not path.exists():
        raise SyncError(f"找不到文件 / file not found: {path}")
    if not path.is_file():
        raise SyncError(f"不是文件 / not a file: {path}")
    with open(path, "rb") as f:
        magic = f.read(4)
    if path.suffix.lower() in (".xlsx", ".xlsm") or magic.startswith(b"PK\x03\x04"):
        encoding, source = "xlsx", XlsxSource(path)
    elif path.suffix.lower() == ".xls" or magic.startswith(b"\xd0\xcf\x11\xe0"):
        raise SyncError(f"不支持旧版.xls,请在Excel里另存为.xlsx或CSV / old .xls not supported, save as .xlsx or CSV: {path}")
    else:
        encoding = _detect_encoding(path)
        source = CsvSource(path, encoding)
    try:
        header_line, header = _header(source.header_rows(), path)
        positions = _positions(header, kind, path)
    except BaseException:
        source.close()
        raise
    source.salt = hashlib.blake2b(repr((kind, positions, len(header))).encode(), digest_size=16).digest()
    return Table(path, kind, encoding, [h.strip(STRIP).lstrip("\ufeff") for h in header], positions, header_line,
                 source)


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
        raise SyncError(f"文件是空的 / empty file: {path}")
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
        if len(set(names) & set(want)) < 3:
            raise SyncError(f"不是{KIND_WORD[kind]}文件(缺少列 {','.join(missing)}) / missing columns: {path}")
        raise SyncError(f"缺少列 {','.join(missing)} / missing columns: {path}")
    return [names.index(c) for c in want]


def estimate_rows(path: Path, encoding: str) -> int:
    """Data rows: from the file's size and its first MiB (CSV) or the sheet's dimension (xlsx); for the
    progress bar."""
    if encoding == "xlsx":
        try:
            from openpyxl import load_workbook

            wb = load_workbook(path, read_only=True)
            n = wb.worksheets[0].max_row or 0
            wb.close()
            return max(0, n - 1)
        except Exception:
            return 0
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(READ_BYTES)
    lines = head.count(b"\n")
    if len(head) >= size:
        return max(0, lines - 1)
    return max(0, int(size / max(1, len(head)) * lines) - 1)
