"""Reading and checking in a forked process while this one writes to SQLite (the GIL would serialise
threads, and the two halves take about as long).

What goes through the pipe is cheap to make and to take apart: a block's good rows as one text (every
cell joined by \\x1f, row after row: one join here, one split and a slice per column there, no Python
call per row on either side; pickling a million tuples costs twice the checking), their line numbers as
an array, and the few rejected rows pickled. A block whose cells hold the separator goes pickled whole.

    with events_from(table, kind, known) as events:    # ("rows", values, lines, rejected, others, clean, n)
        for event in events: ...                       # or ("skip", keys, n, digest)
"""
from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import os
import pickle
import signal
import sys
from array import array
from itertools import chain

from .check import Checker, block_keys, check_block
from .read import SyncError

PARALLEL_MIN_BYTES = 4 << 20  # files this large are read and checked in a second process
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
_CELL = "\x1f"


def events(table, kind: str, known: set, hold=None):
    """The file's blocks, checked: ("rows", values, lines, rejected, others, clean digest or None, n) or,
    for a block an earlier sync took in whole, ("skip", keys, n, digest). `hold(checked, block)`, when given, takes
    rows out of a block first (keys given twice) and says whether it took any: `hold` is the Writer of a
    second pass (its hold() and twice_in())."""
    checker = Checker()
    positions = table.positions
    for block in table.blocks():
        n = len(block.lines) + len(block.errors)
        if block.digest is not None and block.digest in known and not block.errors:
            keys = block_keys(kind, block, positions)
            if hold is None or not hold.twice_in(keys):
                yield "skip", keys, n, block.digest
                continue
        checked = check_block(checker, kind, block, positions)
        held = hold.hold(checked, block) if hold is not None else False
        clean = block.digest if not checked.rejected and not held else None
        yield "rows", checked.values, checked.lines, checked.rejected, checked.others, clean, n


@contextlib.contextmanager
def events_from(table, kind: str, known: set):
    """events(), from a forked process for a large CSV file, else from this one."""
    try:
        size = table.path.stat().st_size
    except OSError:
        size = 0
    if (size < PARALLEL_MIN_BYTES or table.encoding == "xlsx"
            or "fork" not in multiprocessing.get_all_start_methods()):
        yield events(table, kind, known)
        return
    ctx = multiprocessing.get_context("fork")
    receive, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(table, kind, known, send, receive, os.getpid()), daemon=True)
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


def _child(table, kind, known, send, receive, parent: int) -> None:
    """The forked reader: dies with its parent (a killed `xnh sync` leaves no reader behind, blocked on a
    pipe and holding the database open), and keeps only its own end of the pipe, so that a writer that
    is gone shows as a broken pipe."""
    _die_with_parent(parent)
    receive.close()
    try:
        for event in events(table, kind, known):
            send.send_bytes(_encode(event, kind))
        send.send_bytes(pickle.dumps(("done",)))
    except BrokenPipeError:
        pass  # the writer is gone (killed, or stopped on an error)
    except SyncError as e:
        send.send_bytes(pickle.dumps(("error", str(e))))
    except Exception as e:  # anything else: report it in one line, the writer rolls back
        send.send_bytes(pickle.dumps(("error", f"{e.__class__.__name__}: {e}")))
    finally:
        send.close()
        os._exit(0)  # no atexit handlers, no finalisers of the parent's objects (its database connection)


def _encode(event, kind: str) -> bytes:
    if event[0] != "rows":
        return pickle.dumps(event, protocol=pickle.HIGHEST_PROTOCOL)
    _, values, lines, rejected, others, clean, n = event
    if kind == "enrollment":
        values = [(str(v[0]), *v[1:]) for v in values]
    width = len(values[0]) if values else 0
    text = _CELL.join(chain.from_iterable(values))  # every cell in a row, one C-level join
    if text.count(_CELL) != max(0, len(values) * width - 1):
        return pickle.dumps(event, protocol=pickle.HIGHEST_PROTOCOL)  # a cell holds the separator
    head = pickle.dumps((rejected, others, clean, n, width), protocol=pickle.HIGHEST_PROTOCOL)
    numbers = array("I", lines).tobytes()
    return (b"T" + len(head).to_bytes(4, "little") + head + len(numbers).to_bytes(4, "little") + numbers
            + text.encode("utf-8", "surrogatepass"))


def _decode(data: bytes, kind: str):
    """The writer's half: one split and a slice per column, the rows zipped in C (no Python call per row)."""
    if data[:1] != b"T":
        return pickle.loads(data)
    size = int.from_bytes(data[1:5], "little")
    rejected, others, clean, n, width = pickle.loads(data[5:5 + size])
    at = 5 + size
    size = int.from_bytes(data[at:at + 4], "little")
    lines = array("I")
    lines.frombytes(data[at + 4:at + 4 + size])
    text = data[at + 4 + size:].decode("utf-8", "surrogatepass")
    if not text or not width:
        return "rows", [], [], rejected, others, clean, n
    flat = text.split(_CELL)
    values = list(zip(*[flat[i::width] for i in range(width)]))
    return "rows", values, lines.tolist(), rejected, others, clean, n


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
