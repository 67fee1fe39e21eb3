"""Secrets removed by value wherever text leaves the process.

`config.Secret` keeps a credential out of every repr, but a server may echo one back in its own
words ("API key tok-abc is not valid", a password quoted URL-encoded in a query string), and such
text is carried on into a log line, the runs table, /api/health and the CLI's error line. Matching
credential *shapes* (`Bearer …`, `psk_…`) misses a plain word; removing credentials by *value*
does not.

Rules it keeps:
- The secrets come from the loaded configuration itself (`secrets_of`): every value of type
  `config.Secret` and the user-info of every URL setting. There is no hand list, so a new
  Secret-typed setting is scrubbed from its first day.
- Each secret is removed as written and in its URL-encoded forms (`%40` and `%2f` alike, `+` for
  a space), and so is a piece of one cut short by a length limit (its first
  `MIN_PREFIX_CHARS` characters or more), because error reasons are truncated.
- Text leaves through four places, and each goes through a `Redactor`: every log record (the
  CLI calls `install`, which scrubs records as they are made, whatever logger or handler they
  use), the run record the sync writes to the cache, health's answer, and the CLI's one-line
  errors.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import re
import threading
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import quote, quote_plus, unquote, urlsplit

from .config import Secret

MASK = "***"
# A secret longer than this is also removed when only its beginning appears (an error reason
# truncated mid-token); shorter pieces are too common to remove from every line of text.
MIN_PREFIX_CHARS = 8
# Characters a URL encoder may leave as they are: none, a path's "/", user-info's ":" and "@".
_SAFE_SETS = ("", "/", ":@", ":@/")
_PERCENT = re.compile(r"%[0-9A-F]{2}")


class Redactor:
    """Callable: the text with every configured secret, in every form, replaced by `***`."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        forms: set[str] = set()
        for secret in secrets:
            if secret.strip():
                forms.update(encoded_forms(secret))
        # Longest first, so one form that contains another is removed whole.
        self.forms = tuple(sorted(forms, key=lambda f: (-len(f), f)))

    @classmethod
    def from_config(cls, config: Any) -> Redactor:
        return cls(secrets_of(config))

    def __bool__(self) -> bool:
        return bool(self.forms)

    def __call__(self, text: str) -> str:
        if not self.forms or not text:
            return text
        spans: list[tuple[int, int]] = []
        for form in self.forms:
            head = form[:MIN_PREFIX_CHARS]
            at = text.find(head)
            while at != -1:
                end = at + len(head)
                stop = min(at + len(form), len(text))
                while end < stop and text[end] == form[end - at]:
                    end += 1
                if end - at == len(form) or len(head) == MIN_PREFIX_CHARS:
                    spans.append((at, end))
                at = text.find(head, at + 1)
        if not spans:
            return text
        merged: list[list[int]] = []
        for start, end in sorted(spans):
            if merged and start <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], end)
            else:
                merged.append([start, end])
        out: list[str] = []
        cursor = 0
        for start, end in merged:
            out += [text[cursor:start], MASK]
            cursor = end
        out.append(text[cursor:])
        return "".join(out)

    def scrub_tree(self, value: Any) -> Any:
        """Every string inside a JSON-like value (dicts, lists) scrubbed; other values as they are."""
        if isinstance(value, str):
            return self(value)
        if isinstance(value, dict):
            return {key: self.scrub_tree(item) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return [self.scrub_tree(item) for item in value]
        return value


def encoded_forms(secret: str) -> set[str]:
    """The secret as written, URL-encoded (upper- and lower-case hex) and JSON-escaped."""
    forms = {secret, json.dumps(secret)[1:-1]}
    for safe in _SAFE_SETS:
        for encoded in (quote(secret, safe=safe), quote_plus(secret, safe=safe)):
            forms.add(encoded)
            forms.add(_PERCENT.sub(lambda m: m.group().lower(), encoded))
    return forms


def url_credentials(value: str) -> list[str]:
    """The user-info of a URL (`user:password@`), whole and in parts, as written and decoded.

    With a password, the password and the whole user-info are secret; a user name alone is the
    credential itself (a token passed as the user), so then it is secret too.
    """
    if "://" not in value or "@" not in value:
        return []
    try:
        netloc = urlsplit(value).netloc
    except ValueError:
        netloc = value.split("://", 1)[1].split("/", 1)[0]
    userinfo = netloc.rpartition("@")[0]
    if not userinfo:
        return []
    user, colon, password = userinfo.partition(":")
    found = [userinfo, unquote(userinfo)]
    if colon and password:
        found += [password, unquote(password)]
    elif user:
        found += [user, unquote(user)]
    return [item for item in found if item]


def secrets_of(config: Any) -> list[str]:
    """Every secret a configuration holds: each `Secret` value and each URL setting's user-info."""
    found: list[str] = []
    for item in dataclasses.fields(config):
        value = getattr(config, item.name)
        if isinstance(value, Secret):
            found.append(value.reveal())
        elif isinstance(value, str):
            found += url_credentials(value)
    return found


# -- the process's log records ---------------------------------------------------------------

_active = Redactor()
_install_lock = threading.Lock()
_installed = False


def install(config: Any, extra: Iterable[str] = ()) -> Redactor:
    """Scrub this configuration's secrets from every log record the process makes from now on;
    `extra`: secrets held in a file the configuration names (the plug passwords in PLUGS_FILE).

    It works where records are made (`logging.setLogRecordFactory`) rather than as a filter on
    the root logger: a logger's filters never see records propagated from child loggers, and a
    handler's filter misses handlers added later; the factory sees every record once.
    """
    global _active, _installed
    redactor = Redactor([*secrets_of(config), *extra])
    with _install_lock:
        _active = redactor
        if not _installed:
            logging.setLogRecordFactory(_scrubbing_factory(logging.getLogRecordFactory()))
            _installed = True
    return redactor


def scrub(text: str) -> str:
    """`text` without the secrets of the configuration last installed."""
    return _active(text)


def _scrubbing_factory(make: Callable[..., logging.LogRecord]) -> Callable[..., logging.LogRecord]:
    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make(*args, **kwargs)
        redactor = _active
        if redactor:
            scrub_record(record, redactor)
        return record

    return factory


_FORMATTER = logging.Formatter()


def scrub_record(record: logging.LogRecord, redactor: Redactor) -> None:
    """Render the record's message (and traceback) now, with the secrets removed."""
    try:
        message = record.getMessage()
    except Exception:  # a malformed call: logging reports it itself; keep the raw template only
        message = str(record.msg)
    record.msg, record.args = redactor(message), None
    if record.exc_info and not record.exc_text:
        record.exc_text = _FORMATTER.formatException(record.exc_info)
    if record.exc_text:
        record.exc_text = redactor(record.exc_text)
    if record.stack_info:
        record.stack_info = redactor(record.stack_info)
