"""How an exception is described on spans and log records: OpenTelemetry's `exception.*` attributes."""

from __future__ import annotations

import traceback


def safe_str(value: object) -> str:
    """str(value), or a placeholder when its __str__ raises (a broken __str__ must not lose a batch)."""
    try:
        return str(value)
    except Exception as exc:
        return f"<unprintable {type(value).__qualname__}: {type(exc).__name__}>"


def exception_fields(exc: BaseException) -> dict[str, str]:
    """`exception.type` (module-qualified unless built in), `exception.message` and `exception.stacktrace`."""
    kind = type(exc)
    qualified = kind.__module__ not in ("builtins", "__main__")
    return {
        "exception.type": f"{kind.__module__}.{kind.__qualname__}" if qualified else kind.__qualname__,
        "exception.message": safe_str(exc),
        "exception.stacktrace": "".join(traceback.format_exception(exc)),
    }
