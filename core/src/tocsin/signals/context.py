"""The context that follows a piece of work through calls, asyncio tasks and (when copied) threads.

Tracing sets `current_span`; workflows set `current_execution`; logs read both so every record carries
trace_id, span_id, execution_id and step without the caller passing them. asyncio tasks inherit the
context automatically; for threads, run the target inside `contextvars.copy_context().run` (or use
`tocsin.signals.context.wrap`).
"""

from __future__ import annotations

import contextvars
import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ParamSpec, Protocol, TypeVar

P = ParamSpec("P")
R = TypeVar("R")


class SpanIdentity(Protocol):
    """What logs need from the current span."""

    trace_id: str
    span_id: str


@dataclass(frozen=True, slots=True)
class ExecutionContext:
    """The workflow execution (and step) the current code runs in."""

    execution_id: str
    step: str | None = None


current_span: contextvars.ContextVar[Any] = contextvars.ContextVar("tocsin_span", default=None)
current_execution: contextvars.ContextVar[ExecutionContext | None] = contextvars.ContextVar(
    "tocsin_execution", default=None
)


def wrap(fn: Callable[P, R]) -> Callable[P, R]:
    """Bind `fn` to the caller's current context, so a thread running it sees the same span and execution."""
    ctx = contextvars.copy_context()

    @functools.wraps(fn)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        return ctx.copy().run(fn, *args, **kwargs)

    return run
