"""Would a C CSV parser (pyarrow.csv) make the sync's reader cheaper? Measures, on one file and in one
process (no writer, no checks), the reader's reading and splitting as the product does it today against
pyarrow's parse into string columns plus the conversion to what the checker and the pipe take (a Python
list of str per column), plus what the product would still do per line with pyarrow (line boundaries,
CRC-32 for the part boundaries, BLAKE2b part digests, the decoded line texts the report and the line-length
check use).

    python bench/arrow_reader.py FILE [--rounds 3]

FILE: a claims CSV, e.g. claims_1000000.csv of `bench/sync_bench.py --keep DIR`. Needs pyarrow (not a
dependency of xnh: `pip install pyarrow`). Prints the best wall time and the CPU time (all threads) of
each stage over the rounds, in s and µs a row. Figures: bench/SYNC_RESULTS.md (issue 17, fourth pass).
"""
import argparse
import gc
import hashlib
import sys
import time
import zlib
from itertools import compress, repeat
from operator import and_, not_
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from machine import describe  # noqa: E402

from xnh.sync import read  # noqa: E402


def timed(fn, rounds: int):
    """(best wall s, CPU s of that round, result of the last round)."""
    best = None
    out = None
    for _ in range(rounds):
        gc.collect()
        w0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        w, c = time.perf_counter() - w0, time.process_time() - c0
        if best is None or w < best[0]:
            best = (w, c)
    return best[0], best[1], out


# -- today's reader -------------------------------------------------------------------------------------

def product_blocks(path: Path, split: bool):
    """Today's reader: open_table and its blocks (read, line boundaries, CRC-32, BLAKE2b, decode, and with
    `split` the one split a block into columns). Returns the rows seen."""
    table = read.open_table(path, "claims")
    n = 0
    try:
        for block in table.blocks():
            if split:
                cols = block.columns
                n += len(cols[0]) if cols else len(block.rows)
            else:
                n += len(block.lines)
    finally:
        table.close()
    return n


def lines_crc_digests(path: Path, decode: bool):
    """What the product still does per line if pyarrow split the cells: the lines cut (READ_BYTES reads),
    CRC-32 per line, part ends, BLAKE2b per part, and with `decode` the lines' texts (report, lengths)."""
    n = 0
    buf = b""
    with open(path, "rb") as f:
        f.readline()
        while True:
            data = f.read(read.READ_BYTES)
            if not data:
                break
            buf += data
            cut = buf.rfind(b"\n")
            lines = buf[:cut].split(b"\n")
            buf = buf[cut + 1:]
            sums = list(map(zlib.crc32, lines))
            ends = [i + 1 for i in compress(range(len(lines)), map(not_, map(and_, sums, repeat(read.PART_MASK))))]
            start = 0
            for end in ends:
                hashlib.blake2b(b"\n".join(lines[start:end]), digest_size=16, key=b"k" * 16).digest()
                start = end
            if decode:
                b"\n".join(lines).decode("utf-8").split("\n")
            n += len(lines)
    return n


# -- pyarrow ----------------------------------------------------------------------------------------------

def arrow_options(path: Path, threads: bool, block_size: int):
    import pyarrow as pa
    from pyarrow import csv as pcsv

    with open(path, encoding="utf-8") as f:
        names = f.readline().rstrip("\r\n").split(",")
    ro = pcsv.ReadOptions(use_threads=threads, block_size=block_size, skip_rows=1, column_names=names,
                          encoding="utf8")
    po = pcsv.ParseOptions(delimiter=",", quote_char='"', double_quote=True, escape_char=False,
                           newlines_in_values=False, ignore_empty_lines=False)
    co = pcsv.ConvertOptions(column_types={c: pa.string() for c in names}, strings_can_be_null=False,
                             quoted_strings_can_be_null=False, check_utf8=True)
    return ro, po, co


def arrow_read(path: Path, threads: bool):
    """read_csv: the whole file into one Table."""
    from pyarrow import csv as pcsv

    ro, po, co = arrow_options(path, threads, 1 << 20)
    return pcsv.read_csv(path, read_options=ro, parse_options=po, convert_options=co)


def arrow_stream(path: Path, threads: bool, convert: str | None):
    """open_csv: record batches of ~1 MiB, each converted (`convert`: None, 'pylist', 'numpy')."""
    from pyarrow import csv as pcsv

    ro, po, co = arrow_options(path, threads, 1 << 20)
    n = 0
    for batch in pcsv.open_csv(path, read_options=ro, parse_options=po, convert_options=co):
        n += batch.num_rows
        if convert == "pylist":
            cols = [c.to_pylist() for c in batch.columns]
        elif convert == "numpy":
            cols = [c.to_numpy(zero_copy_only=False).tolist() for c in batch.columns]
        elif convert == "numpy_obj":
            cols = [c.to_numpy(zero_copy_only=False) for c in batch.columns]
        del batch
    return n


def convert_table(table, how: str):
    """The columns of a Table as Python lists of str, chunk by chunk (as a streaming reader would)."""
    n = 0
    for batch in table.to_batches(max_chunksize=8192):
        if how == "pylist":
            cols = [c.to_pylist() for c in batch.columns]
        else:
            cols = [c.to_numpy(zero_copy_only=False).tolist() for c in batch.columns]
        n += len(cols[0])
    return n


def per_block(path: Path, rounds: int):
    """On the product's own blocks (content-defined, ~2,048 lines): the work pyarrow would take over, timed
    block by block in the same loop (same load): today's decode of the block's bytes into line texts and the
    comma count per line (cells per line), today's one split into columns, against pyarrow read_csv of
    the block's bytes (1 thread) + to_pylist per column. Returns {stage: best s}."""
    import pyarrow as pa
    from pyarrow import csv as pcsv

    best: dict = {}
    for _ in range(rounds):
        table = read.open_table(path, "claims")
        width = len(table.header)
        names = [f"c{i}" for i in range(width)]
        ro = pcsv.ReadOptions(use_threads=False, column_names=names, block_size=1 << 22)
        po = pcsv.ParseOptions(newlines_in_values=False, ignore_empty_lines=False)
        co = pcsv.ConvertOptions(column_types={c: pa.string() for c in names}, strings_can_be_null=False,
                                 quoted_strings_can_be_null=False)
        spent = {"decode + line texts + cells per line": 0.0, "split into columns": 0.0,
                 "pyarrow parse": 0.0, "pyarrow to_pylist": 0.0, "pyarrow to_numpy(object)": 0.0, "rows": 0}
        pc = time.perf_counter
        for block in table.blocks():
            if not block.split_later():
                continue
            data = block.text.encode("utf-8")
            t0 = pc()
            texts = data.decode("utf-8").split("\n")
            set(map(str.count, texts, repeat(",")))
            t1 = pc()
            cols = block.columns
            t2 = pc()
            batch = pcsv.read_csv(pa.py_buffer(data), read_options=ro, parse_options=po, convert_options=co)
            t3 = pc()
            acols = [c.to_pylist() for c in batch.columns]
            t4 = pc()
            [c.to_numpy(zero_copy_only=False) for c in batch.columns]
            t5 = pc()
            assert acols == cols, "pyarrow's cells differ"
            spent["decode + line texts + cells per line"] += t1 - t0
            spent["split into columns"] += t2 - t1
            spent["pyarrow parse"] += t3 - t2
            spent["pyarrow to_pylist"] += t4 - t3
            spent["pyarrow to_numpy(object)"] += t5 - t4
            spent["rows"] += len(cols[0])
        table.close()
        for k, v in spent.items():
            best[k] = v if k not in best else min(best[k], v)
    return best


def per_call(path: Path) -> None:
    """pyarrow read_csv's cost a call by size (1 thread): what parsing block by block pays."""
    import pyarrow as pa
    from pyarrow import csv as pcsv

    with open(path, "rb") as f:
        f.readline()
        lines = [f.readline() for _ in range(16384)]
    names = [f"c{i}" for i in range(lines[0].count(b",") + 1)]
    ro = pcsv.ReadOptions(use_threads=False, column_names=names, block_size=1 << 22)
    po = pcsv.ParseOptions(newlines_in_values=False)
    co = pcsv.ConvertOptions(column_types={c: pa.string() for c in names})
    for n in (1, 2048, 16384):
        data = pa.py_buffer(b"".join(lines[:n]))
        k = 200 if n <= 2048 else 30
        t = time.perf_counter()
        for _ in range(k):
            pcsv.read_csv(data, read_options=ro, parse_options=po, convert_options=co)
        d = (time.perf_counter() - t) / k
        print(f"  read_csv of {n:>6} lines: {d * 1e3:6.3f} ms a call, {d * 1e6 / n:7.2f} µs/row", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("file")
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    path = Path(a.file)
    import pyarrow

    print(f"{describe()}; pyarrow {pyarrow.__version__}; {path} ({path.stat().st_size / 1e6:.0f} MB)")
    rows = None
    results = []

    def stage(label, fn):
        nonlocal rows
        wall, cpu, out = timed(fn, a.rounds)
        if rows is None and isinstance(out, int):
            rows = out
        per = 1e6 / rows if rows else 0
        results.append((label, wall, cpu))
        print(f"{label:<72} {wall:6.2f} s wall {wall * per:5.2f} µs/row   CPU {cpu:6.2f} s {cpu * per:5.2f} µs/row",
              flush=True)
        return out

    spent = per_block(path, a.rounds)
    n = spent.pop("rows")
    print(f"per block, the product's blocks ({n} rows in blocks without quotes):")
    for k, v in spent.items():
        print(f"  {k:<70} {v:6.2f} s  {v * 1e6 / n:5.2f} µs/row", flush=True)
    per_call(path)
    stage("today: read, lines, CRC, BLAKE2b, decode (blocks, not split)", lambda: product_blocks(path, False))
    stage("today: the same + split into columns (what the checker takes)", lambda: product_blocks(path, True))
    stage("kept with pyarrow: lines, CRC, BLAKE2b (no decode)", lambda: lines_crc_digests(path, False))
    stage("kept with pyarrow: lines, CRC, BLAKE2b + decoded line texts", lambda: lines_crc_digests(path, True))
    stage("pyarrow open_csv, 1 thread, parse only", lambda: arrow_stream(path, False, None))
    stage("pyarrow open_csv, threads, parse only", lambda: arrow_stream(path, True, None))
    stage("pyarrow open_csv, 1 thread, + to_pylist per column", lambda: arrow_stream(path, False, "pylist"))
    stage("pyarrow open_csv, 1 thread, + to_numpy(object).tolist() per column",
          lambda: arrow_stream(path, False, "numpy"))
    stage("pyarrow open_csv, 1 thread, + to_numpy(object) per column (no list)",
          lambda: arrow_stream(path, False, "numpy_obj"))
    stage("pyarrow read_csv, 1 thread, parse only (whole file in memory)", lambda: arrow_read(path, False).num_rows)
    stage("pyarrow read_csv, threads, parse only (whole file in memory)", lambda: arrow_read(path, True).num_rows)
    table = arrow_read(path, False)
    stage("conversion alone: Table → lists of str, to_pylist", lambda: convert_table(table, "pylist"))
    stage("conversion alone: Table → lists of str, to_numpy(object).tolist()", lambda: convert_table(table, "numpy"))


if __name__ == "__main__":
    main()
