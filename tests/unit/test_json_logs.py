"""JSON log lines: the fields, the scrubbing, and switching stderr handlers back and forth."""

from __future__ import annotations

import io
import json
import logging
import sys
import warnings
from datetime import datetime, timedelta

from notebench.server.logs.jsonlines import JsonLineFormatter, JsonStderr
from notebench.server.scrubbing import SecretScrubber

SECRET = "s3cret-server-token"


def formatter() -> JsonLineFormatter:
    scrubber = SecretScrubber(environ={})
    scrubber.add(SECRET)
    return JsonLineFormatter(scrub=scrubber.scrub_text)


def record(message: str, *args: object, exc: BaseException | None = None,
           **extra: object) -> logging.LogRecord:
    exc_info = (type(exc), exc, exc.__traceback__) if exc is not None else None
    made = logging.LogRecord("notebench.jobs", logging.WARNING, __file__, 1, message, args,
                             exc_info)
    made.__dict__.update(extra)
    return made


def test_a_record_is_one_line_with_its_fields():
    line = formatter().format(record("job %s:\nline two", "j1", job_id="j1", size=3))
    assert "\n" not in line
    entry = json.loads(line)
    assert entry == {"time": entry["time"], "level": "warning", "logger": "notebench.jobs",
                     "message": "job j1:\nline two", "job_id": "j1", "size": 3}
    when = datetime.fromisoformat(entry["time"])
    assert entry["time"].endswith("Z") and when.utcoffset() == timedelta(0)


def test_the_traceback_and_every_text_are_scrubbed():
    try:
        raise ValueError(f"bad token {SECRET}")
    except ValueError as exc:
        caught = exc
    line = formatter().format(record("token=%s", SECRET, exc=caught, url=f"?token={SECRET}",
                                     headers={"Authorization": f"token {SECRET}"},
                                     other=object()))
    assert SECRET not in line
    entry = json.loads(line)
    assert entry["message"] == "token=[secret]"
    assert "Traceback" in entry["exc_info"] and "bad token [secret]" in entry["exc_info"]
    assert entry["url"] == "?token=[secret]"
    assert entry["headers"] == {"Authorization": "token [secret]"}
    assert entry["other"].startswith("<object")


def test_a_record_whose_arguments_do_not_fit_still_makes_a_line():
    entry = json.loads(formatter().format(record("%d items", "many")))
    assert entry["message"].startswith("%d items")


def test_stderr_handlers_switch_and_switch_back():
    logger = logging.getLogger("notebench-test-json-logs")
    to_stderr = logging.StreamHandler(sys.stderr)
    text = logging.Formatter("%(levelname)s %(message)s")
    to_stderr.setFormatter(text)
    elsewhere = logging.StreamHandler(io.StringIO())
    elsewhere.setFormatter(text)
    logger.addHandler(to_stderr)
    logger.addHandler(elsewhere)
    showwarning = warnings.showwarning
    json_stderr = JsonStderr()
    try:
        json_stderr.apply()
        json_stderr.apply()  # again: nothing switched twice
        assert isinstance(to_stderr.formatter, JsonLineFormatter)
        assert elsewhere.formatter is text  # not stderr: left alone
        assert warnings.showwarning is not showwarning  # warnings go through logging
    finally:
        json_stderr.close()
        logger.removeHandler(to_stderr)
        logger.removeHandler(elsewhere)
    assert to_stderr.formatter is text
    assert warnings.showwarning is showwarning
