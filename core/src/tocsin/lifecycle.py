"""The process side of a monitor's lifecycle: sync callers that wait, the final flush at exit, and SIGTERM.

At interpreter exit the stdlib shuts its thread pools down (`concurrent.futures`, which asyncio's default
executor uses) before `atexit` handlers run, so a final flush that needs `run_in_executor` must run earlier:
`threading._register_atexit` hooks run first, newest first, before non-daemon threads are joined. SIGTERM —
how containers and service managers stop a process — runs no exit hook at all, so a sync app that leaves it
at the default gets a handler that closes the live monitors, then lets SIGTERM kill the process as before.
"""

from __future__ import annotations

import atexit
import concurrent.futures.thread  # noqa: F401 - its exit hook must be registered before ours, so ours runs first
import logging
import os
import signal
import threading
from collections.abc import Callable, Coroutine, Generator
from types import FrameType
from typing import Any

internal_log = logging.getLogger("tocsin")

_pending: dict[Callable[[], None], None] = {}
_lock = threading.RLock()  # reentrant: the SIGTERM handler may run in a thread that holds it
_hooked = False
_handling = threading.Event()  # set when the SIGTERM handler starts
NUDGE_AFTER_S = 0.2
"""How long the watcher waits for the SIGTERM handler to start before sending SIGTERM again."""


class Done(Coroutine[Any, Any, None]):
    """What a call that already did its work in sync code returns, so `await` and `run_sync` on it return at once."""

    def send(self, value: object) -> None:
        """Finish at once."""
        raise StopIteration

    def throw(self, typ: Any, val: Any = None, tb: Any = None) -> None:
        """Raise what is thrown in (there is nothing to interrupt)."""
        raise typ if val is None else val

    def __await__(self) -> Generator[Any, None, None]:
        yield from ()


def register(closer: Callable[[], None]) -> None:
    """Call `closer` (a monitor's last-resort close) when the process exits or gets SIGTERM, unless unregistered."""
    global _hooked
    with _lock:
        _pending[closer] = None
        if _hooked:
            return
        _hooked = True
    try:
        threading._register_atexit(close_all)  # type: ignore[attr-defined]
    except (AttributeError, RuntimeError):  # another Python, or the interpreter is already exiting
        atexit.register(close_all)


def unregister(closer: Callable[[], None]) -> None:
    """Forget a closer: its monitor was closed by the app."""
    with _lock:
        _pending.pop(closer, None)


def close_all() -> None:
    """Run every pending closer once, newest first; a failing one is reported and the others still run."""
    with _lock:
        closers = list(reversed(_pending))
        _pending.clear()
    for closer in closers:
        try:
            closer()
        except Exception as error:  # nothing left to raise into
            internal_log.warning("tocsin: final flush at exit failed: %r", error)


def install_sigterm_handler() -> bool:
    """From the main thread, while SIGTERM has its default action: close the monitors on SIGTERM, then die of it."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "SIGTERM"):
        return False
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return signal.getsignal(signal.SIGTERM) is _on_sigterm
    signal.signal(signal.SIGTERM, _on_sigterm)
    _watch_wakeups()
    return True


def _watch_wakeups() -> None:
    """Make sure a SIGTERM is acted on promptly. CPython runs a handler only when the main thread next runs
    Python code: a signal that lands just before it enters a long `time.sleep` waits the whole sleep. The
    signal's number also goes to a wakeup fd; a watcher thread reading it sends SIGTERM again if the handler has
    not started soon after, and that second signal interrupts the sleep. Skipped when the app owns the fd."""
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)
    try:
        previous = signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
    except (ValueError, OSError):
        previous = None
    if previous != -1:  # the app (or asyncio) uses the wakeup fd: leave it alone
        if previous is not None:
            signal.set_wakeup_fd(previous)
        os.close(read_fd)
        os.close(write_fd)
        return
    threading.Thread(target=_nudge_on_sigterm, args=(read_fd,), name="tocsin-sigterm", daemon=True).start()


def _nudge_on_sigterm(read_fd: int) -> None:
    leave_sigterm_to_other_threads()
    while True:
        try:
            received = os.read(read_fd, 64)
        except OSError:
            return
        if not received:
            return
        if signal.SIGTERM in received and not _handling.wait(NUDGE_AFTER_S):
            os.kill(os.getpid(), signal.SIGTERM)


def leave_sigterm_to_other_threads() -> None:
    """Block SIGTERM in the calling thread (threads it starts inherit that), so the kernel delivers it to the
    main thread: a Python handler runs only there, and only a signal delivered there interrupts its sleep."""
    if hasattr(signal, "pthread_sigmask") and hasattr(signal, "SIGTERM"):
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    """Flush and close the live monitors, then take the default action: the process ends by SIGTERM (status 143)."""
    _handling.set()
    close_all()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)
