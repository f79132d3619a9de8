"""A time limit for one block of a test: a hang fails the test instead of stalling the run."""

from __future__ import annotations

import contextlib
import faulthandler
import signal
import sys
from typing import Iterator


class DeadlineExceeded(BaseException):
    """A block ran past its time. Not an ``Exception`` (and so not the ``OSError`` that ``TimeoutError`` is): the
    code under test must not be able to catch it as one more unreadable input and carry on."""


@contextlib.contextmanager
def deadline(seconds: float, what: str) -> Iterator[None]:
    """Raise :class:`DeadlineExceeded` naming ``what`` when the block runs longer than ``seconds`` (SIGALRM, again
    every second after: it interrupts Python code and blocking system calls). Code stuck inside a C loop never
    sees the signal, so after twice the time faulthandler dumps every thread's stack and ends the process — a
    failed run, never an endless one."""
    def expire(signum, frame):
        raise DeadlineExceeded(f"{what}: still running after {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds, 1.0)
    faulthandler.dump_traceback_later(2 * seconds + 5, exit=True, file=sys.stderr)
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
