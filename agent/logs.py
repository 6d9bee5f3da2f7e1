"""Logging set-up: text or JSON lines, context from `extra=`, and secrets scrubbed everywhere."""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}
AUDIT_LOGGER = "opswatch.audit"


def _extra(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in record.__dict__.items() if k not in _STANDARD}


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message and every `extra=` field."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(_extra(record))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class TextFormatter(logging.Formatter):
    """`time level logger: message key=value ...` for people reading a terminal or journal."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extra = _extra(record)
        return line + "".join(f" {k}={v!r}" for k, v in extra.items()) if extra else line


class SecretScrubber(logging.Filter):
    """Replaces every known secret value in a record's text and fields with `***`."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self._secrets = sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)

    def add(self, secret: str) -> None:
        if len(secret) >= 4 and secret not in self._secrets:
            self._secrets = sorted([*self._secrets, secret], key=len, reverse=True)

    def scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if self._secrets:
            record.msg = self.scrub(record.getMessage())
            record.args = None
            for key, value in _extra(record).items():
                if isinstance(value, str):
                    setattr(record, key, self.scrub(value))
        return True


class ScrubbingFormatter(logging.Formatter):
    """Scrubs the finished line: tracebacks and nested fields included, not just the message."""

    def __init__(self, inner: logging.Formatter, scrubber: SecretScrubber) -> None:
        super().__init__()
        self._inner, self._scrubber = inner, scrubber

    def format(self, record: logging.LogRecord) -> str:
        return self._scrubber.scrub(self._inner.format(record))


SCRUBBER = SecretScrubber()


def setup(
    level: str = "info",
    fmt: str = "text",
    audit_file: Path | None = None,
    secrets: Iterable[str] = (),
) -> None:
    """Configure the root logger once for the agent process or a CLI command."""
    for secret in secrets:
        SCRUBBER.add(secret)
    handler = logging.StreamHandler(sys.stderr)
    inner = JsonFormatter() if fmt == "json" else TextFormatter()
    handler.setFormatter(ScrubbingFormatter(inner, SCRUBBER))
    handler.addFilter(SCRUBBER)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    audit = logging.getLogger(AUDIT_LOGGER)
    audit.handlers[:] = []
    if audit_file is not None:
        audit_file.parent.mkdir(parents=True, exist_ok=True)
        file_handler = logging.FileHandler(audit_file)
        file_handler.setFormatter(ScrubbingFormatter(JsonFormatter(), SCRUBBER))
        file_handler.addFilter(SCRUBBER)
        audit.addHandler(file_handler)
    for noisy in ("uvicorn.access", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
