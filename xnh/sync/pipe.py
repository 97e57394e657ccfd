"""Reading and checking in a forked process while this one writes to SQLite (the GIL would serialise
threads). At 1M claims the two halves now take about as long: ≈ 4.2 s of reading and checking against
≈ 4.4 s of writing.

What goes through the pipe is cheap to make and to take apart:
- a block whose every cell its checks leave as written ("text"): the lines as they were read, sent as
  they are; the writer splits them once and binds slices of that list, the export's order kept, and
  computes the few derived values in SQL (write.py's text statement). Most blocks of a county's export
  go this way: nothing is joined or copied per row for the pipe;
- any other block ("rows"): its good rows' checked values as one text (every cell joined by \\x1f, row
  after row, straight from the checked columns: one join here, one split there), their line numbers as
  an array, and the few rejected rows pickled. A block whose cells hold the separator goes pickled whole.
Messages leave through a thread with a queue (Sender), so that checking never waits for the writer to
take a block: a pipe holds 64 KiB, a block's message about 400.

Measured at 1M claims (`bench/sync_profile.py`): sending checked values cost the reader 1.0 s of its 6.1
(joining and encoding); the direct send blocked it 1.5 s of 7.4 while the writer waited for it too.
Tried and dropped: handing a block over unchecked whenever the writer had taken the last one at once, for
the writer to check: slower on this shared machine (14.8–16.2 s against 13.7–14.2 s at load ≈ 3: the two
processes already share two busy vCPUs, and the writer then pays numpy and cold caches); a pipe widened to
1 MiB (F_SETPIPE_SZ): the writer's waits unchanged (0.80–0.86 s against 0.87).

    with events_from(table, kind, known, exact) as events:  # ("rows" or "text", flat, width, lines,
        for event in events: ...                           # rejected, others, clean, n), ("skip", keys,
                                                           # valid, n, digests), last ("keys", repeated)
                                                           # unless exact
"""
from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import os
import pickle
import queue
import signal
import sys
import threading
from array import array
from itertools import chain

from .check import Checker, block_keys, check_block, value_keys
from .read import SyncError

PARALLEL_MIN_BYTES = 4 << 20  # files this large are read and checked in a second process
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
_CELL = "\x1f"
_hash = hash  # of a key (str, or (year, 参合证号)): 64 bits, salted per process (the reader hashes them all)


def events(table, kind: str, known: set, hold=None, exact: bool = True, lazy: bool = False):
    """The file's blocks, checked: ("rows", flat, width, lines, rejected, others, clean digests, n) (flat:
    the good rows' values, row after row, `width` a row), or ("text", text, width, ...) for a block whose
    every cell is as written (text: its lines as read, `width` cells a line in the export's order), and,
    for the parts of a block an earlier sync
    took in whole, first ("skip", keys, valid, n, digests) (valid: the rows with a key). `hold`, when
    given, is the Writer of a second pass: its hold(checked, block) takes out the rows of keys given twice
    and says whether it took any; twice_in(keys) keeps a part holding such a key from being skipped.

    exact: the skipped parts' keys go to the writer, which notes every key of the file (a TEMP table,
    ≈ 1.5 µs a key). Otherwise no key goes to the writer for that: every key (skipped parts, good rows,
    rejected rows) is hashed here (8 bytes a row) and the last event says whether two hashes are equal,
    ("keys", repeated); the writer then does the pass again exactly (a key given twice, or, about once in
    10^11 files of a million rows, two keys of one hash). lazy: `flat` is a function giving (an
    iterator of the values, width): the reader process joins them for the pipe with no list between."""
    checker = Checker()
    positions = table.positions
    seen = None if exact else array("q")
    for block in table.blocks():
        n = len(block.lines) + len(block.errors)
        parts = block.parts or []
        if known and parts:
            skipped = [(a, b, d) for a, b, d in parts if d in known]
            if skipped:
                whole = len(skipped) == len(parts)
                keys = block_keys(kind, block, positions, None if whole else [(a, b) for a, b, _ in skipped])
                if hold is None or not hold.twice_in(keys):
                    count = sum(b - a for a, b, _ in skipped)
                    if seen is not None:
                        seen.extend(map(_hash, keys))
                    yield "skip", keys if seen is None else None, len(keys), count, [d for _, _, d in skipped]
                    if whole:
                        continue
                    n -= count
                    parts = [(a, b, d) for a, b, d in parts if d not in known]
                    ranges = [(a, b) for a, b, _ in parts]
                    block = block.only(ranges)
                    parts = _renumber(parts, list(chain.from_iterable(range(a, b) for a, b in ranges)))
        checked = check_block(checker, kind, block, positions)
        held = hold.hold(checked, block) if hold is not None else False
        if seen is not None:
            seen.extend(map(_hash, checked.keys(kind)))
            seen.extend(_hash(k) for k, _ in checked.others)
        clean = [] if held else _clean(parts, block.lines, checked.rejected)
        if checked.text is not None:
            yield "text", checked.text, checked.width, checked.lines, checked.rejected, checked.others, clean, n
            continue
        flat, width = checked.flat()
        yield "rows", checked.flat if lazy else list(flat), width, checked.lines, checked.rejected, \
            checked.others, clean, n
    if seen is not None:
        yield "keys", _repeated(seen)


def _repeated(hashes: array) -> bool:
    """Whether two of `hashes` are equal (sorted in place by numpy when many: 8 bytes a key, no copy)."""
    if len(hashes) < 100_000:
        return len(set(hashes)) < len(hashes)
    import numpy as np  # the reader process has it already (check.valid_ids)

    a = np.frombuffer(hashes, dtype=np.int64)
    a.sort()
    return bool((a[1:] == a[:-1]).any())


def _renumber(parts, kept: list[int]) -> list:
    """Parts' (start, end) as indexes into the records kept (`kept`: their old indexes, in order)."""
    at = {old: new for new, old in enumerate(kept)}
    return [(at[a], at[b - 1] + 1, d) for a, b, d in parts]


def _clean(parts, lines: list[int], rejected: list) -> list:
    """The digests of the parts none of whose lines was rejected."""
    if not parts:
        return []
    if not rejected:
        return [d for _, _, d in parts]
    bad = {r[0] for r in rejected}
    return [d for a, b, d in parts if bad.isdisjoint(lines[a:b])]


@contextlib.contextmanager
def events_from(table, kind: str, known: set, exact: bool = True):
    """events(), from a forked process for a large CSV file, else from this one."""
    try:
        size = table.path.stat().st_size
    except OSError:
        size = 0
    if (size < PARALLEL_MIN_BYTES or table.encoding == "xlsx"
            or "fork" not in multiprocessing.get_all_start_methods()):
        yield events(table, kind, known, exact=exact)
        return
    ctx = multiprocessing.get_context("fork")
    receive, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(table, kind, known, exact, send, receive, os.getpid()), daemon=True)
    proc.start()
    send.close()
    table.close()  # the child goes on with its own copy of the open file
    try:
        yield _received(receive, kind)
    finally:
        receive.close()
        if proc.is_alive():
            proc.kill()
        proc.join()


def _child(table, kind, known, exact, send, receive, parent: int) -> None:
    """The forked reader: dies with its parent (a killed `xnh sync` leaves no reader behind, blocked on a
    pipe and holding the database open), and keeps only its own end of the pipe, so that a writer that
    is gone shows as a broken pipe. Blocks go through a Sender, so that checking never waits for the
    writer to take the last block."""
    _die_with_parent(parent)
    receive.close()
    sender = Sender(send)
    try:
        for event in events(table, kind, known, exact=exact, lazy=True):
            sender.send(_encode(event, kind))
        sender.send(pickle.dumps(("done",)))
    except BrokenPipeError:
        pass  # the writer is gone (killed, or stopped on an error)
    except SyncError as e:
        sender.send(pickle.dumps(("error", str(e))))
    except Exception as e:  # anything else: report it in one line, the writer rolls back
        sender.send(pickle.dumps(("error", f"{e.__class__.__name__}: {e}")))
    finally:
        sender.close()
        send.close()
        os._exit(0)  # no atexit handlers, no finalisers of the parent's objects (its database connection)


class Sender:
    """Messages written to the pipe by a thread, up to QUEUED ahead of the writer. A pipe holds 64 KiB
    and a block's message about 400: sent directly, the reader waited for the writer to take each block
    while the writer waited for the next (measured at 1M claims: the reader blocked 1.5 s of its 7.4).
    The thread writes with the GIL released. A writer that is gone raises BrokenPipeError at the next
    send, as a direct send would."""

    QUEUED = 8  # messages waiting (≈ 3 MB)

    def __init__(self, connection):
        self.connection = connection
        self.queue: queue.Queue = queue.Queue(self.QUEUED)
        self.failed: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="xnh-sync-sender", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while (data := self.queue.get()) is not None:
            if self.failed is None:
                try:
                    self.connection.send_bytes(data)
                except BaseException as e:  # a broken pipe: the sends after it fail at once
                    self.failed = e

    def send(self, data: bytes) -> None:
        if self.failed is not None:
            raise BrokenPipeError(str(self.failed))
        self.queue.put(data)

    def close(self) -> None:
        """Wait until every message queued is written (or the pipe broke)."""
        self.queue.put(None)
        self.thread.join()


def _encode(event, kind: str) -> bytes:
    if event[0] == "text":  # the block's lines as read: sent as they are
        _, text, width, lines, rejected, others, clean, n = event
        return _message(b"R", (rejected, others, clean, n, width), lines, text)
    if event[0] != "rows":
        return pickle.dumps(event, protocol=pickle.HIGHEST_PROTOCOL)
    _, values, width, lines, rejected, others, clean, n = event  # values(): (an iterator of them, width)
    if kind == "enrollment" and width:
        flat = list(values()[0])
        flat[0::width] = map(str, flat[0::width])
    else:
        flat = values()[0]
    text = _CELL.join(flat)  # every cell of every row, one C-level join
    if text.count(_CELL) != max(0, len(lines) * width - 1):  # a cell holds the separator: pickled
        return pickle.dumps(("rows", list(values()[0]), width, lines, rejected, others, clean, n),
                            protocol=pickle.HIGHEST_PROTOCOL)
    return _message(b"T", (rejected, others, clean, n, width), lines, text)


def _message(tag: bytes, head: tuple, lines: list[int], text: str) -> bytes:
    """tag, the pickled head and the line numbers (each after its length), then the text."""
    head = pickle.dumps(head, protocol=pickle.HIGHEST_PROTOCOL)
    numbers = array("I", lines).tobytes()
    return (tag + len(head).to_bytes(4, "little") + head + len(numbers).to_bytes(4, "little") + numbers
            + text.encode("utf-8", "surrogatepass"))


def _decode(data: bytes, kind: str):
    """The writer's half: T, one split and a slice per column, the rows zipped in C (no Python call per
    row); R, the block's lines as read, which the writer splits."""
    tag = data[:1]
    if tag not in (b"T", b"R"):
        return pickle.loads(data)
    size = int.from_bytes(data[1:5], "little")
    rejected, others, clean, n, width = pickle.loads(data[5:5 + size])
    at = 5 + size
    size = int.from_bytes(data[at:at + 4], "little")
    lines = array("I")
    lines.frombytes(data[at + 4:at + 4 + size])
    text = data[at + 4 + size:].decode("utf-8", "surrogatepass")
    if tag == b"R":
        return "text", text, width, lines.tolist(), rejected, others, clean, n
    if not text or not width:
        return "rows", [], 0, [], rejected, others, clean, n
    return "rows", text.split(_CELL), width, lines.tolist(), rejected, others, clean, n


def _received(receive, kind: str):
    while True:
        try:
            data = receive.recv_bytes()
        except EOFError:
            raise SyncError("读取进程意外退出 / the reader process died") from None
        event = _decode(data, kind)
        if event[0] == "done":
            return
        if event[0] == "error":
            raise SyncError(event[1])
        yield event


def _die_with_parent(parent: int) -> None:
    """Ask Linux to SIGKILL this process when its parent dies (prctl PR_SET_PDEATHSIG); elsewhere the
    closed pipe end is what stops the reader."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)
