"""Logs carry context as fields and never carry a secret."""

from __future__ import annotations

import json
import logging

from agent.logs import JsonFormatter, SecretScrubber, TextFormatter


def record(msg: str, *args: object, **extra: object) -> logging.LogRecord:
    rec = logging.LogRecord("opswatch.test", logging.INFO, __file__, 1, msg, args or None, None)
    for key, value in extra.items():
        setattr(rec, key, value)
    return rec


def test_json_lines_carry_extra_fields() -> None:
    line = JsonFormatter().format(record("run %s done", "r1", runbook="clean_directory"))
    entry = json.loads(line)
    assert entry["message"] == "run r1 done"
    assert entry["runbook"] == "clean_directory"
    assert entry["level"] == "info"


def test_text_lines_append_extra_fields() -> None:
    line = TextFormatter().format(record("collector failed", collector="paths"))
    assert line.endswith("opswatch.test: collector failed collector='paths'")


def test_secrets_are_scrubbed_from_message_args_and_fields() -> None:
    scrubber = SecretScrubber(["s3cret-pass"])
    rec = record(
        "connect %s", "postgresql://u:s3cret-pass@db/x", url="postgresql://u:s3cret-pass@db"
    )
    scrubber.filter(rec)
    text = JsonFormatter().format(rec)
    assert "s3cret-pass" not in text
    assert "postgresql://u:***@db/x" in text


def test_tracebacks_and_nested_fields_are_scrubbed_too() -> None:
    from agent.logs import ScrubbingFormatter

    scrubber = SecretScrubber(["s3cret-pass"])
    try:
        raise ConnectionError("login failed for postgresql://u:s3cret-pass@db")
    except ConnectionError:
        import sys

        rec = record("store down", detail={"url": "postgresql://u:s3cret-pass@db"})
        rec.exc_info = sys.exc_info()
    for inner in (JsonFormatter(), TextFormatter()):
        text = ScrubbingFormatter(inner, scrubber).format(rec)
        assert "s3cret-pass" not in text
        assert "ConnectionError" in text


def test_stored_text_reaches_a_terminal_without_escape_sequences() -> None:
    from agent.cli_common import printable

    hostile = "line one\n\x1b]0;pwned\x07\x1b[2Jline two\tend"
    assert printable(hostile) == "line one\n\\x1b]0;pwned\\x07\\x1b[2Jline two\tend"
