"""Reading and checking a large file in a forked process while this one writes to SQLite (the two
halves take about as long, and the GIL would serialise threads)."""
from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import os
import signal
import sys

from .check import batches
from .read import SyncError

PARALLEL_MIN_BYTES = 4 << 20  # files this large are read and checked in a second process
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>

@contextlib.contextmanager
def batch_source(rows, kind, positions, path):
    """The checked batches; for a large file, read and checked in a forked process while this one writes
    to SQLite (the two halves take about as long, and the GIL would serialise threads)."""
    try:
        size = path.stat().st_size
    except OSError:
        size = 0
    if size < PARALLEL_MIN_BYTES or "fork" not in multiprocessing.get_all_start_methods():
        yield batches(rows, kind, positions)
        return
    ctx = multiprocessing.get_context("fork")
    receive, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_reader_process, args=(rows, kind, positions, send, receive, os.getpid()), daemon=True)
    proc.start()
    send.close()
    rows.close()  # the child goes on with its own copy of the open file
    try:
        yield _from_reader(receive)
    finally:
        receive.close()
        if proc.is_alive():
            proc.kill()
        proc.join()


def _reader_process(rows, kind, positions, send, receive, parent: int) -> None:
    """The child: dies with its parent (a killed `xnh sync` leaves no reader behind, blocked on a pipe
    and holding the database open), and keeps only its own end of the pipe, so that a writer that is
    gone shows as a broken pipe."""
    _die_with_parent(parent)
    receive.close()
    try:
        for batch in batches(rows, kind, positions):
            send.send(("batch", batch))
        send.send(("done", None))
    except BrokenPipeError:
        pass  # the writer is gone (killed, or stopped on an error)
    except SyncError as e:
        send.send(("error", str(e)))
    except Exception as e:  # anything else: report it in one line, the writer rolls back
        send.send(("error", f"{e.__class__.__name__}: {e}"))


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


def _from_reader(receive):
    while True:
        try:
            tag, item = receive.recv()
        except EOFError:
            raise SyncError("读取进程意外退出 / the reader process died") from None
        if tag == "done":
            return
        if tag == "error":
            raise SyncError(item)
        yield item

