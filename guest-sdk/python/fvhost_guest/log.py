"""Log lines to the host's log (tagged with the tenant and view, rate
limited by the host). Outside a component they go to stderr."""

import sys

try:
    from wit_world.imports import host as _host
except ImportError:  # running natively: tests, fvhost's own tooling
    _host = None


def _emit(level, message):
    # Valid UTF-8 whatever the message holds (lone surrogates escaped).
    message = str(message).encode("utf-8", errors="backslashreplace").decode("utf-8")
    if _host is not None:
        _host.log(getattr(_host.Level, level.upper()), message)
    else:
        print(f"[{level}] {message}", file=sys.stderr)


def debug(message):
    _emit("debug", message)


def info(message):
    _emit("info", message)


def warn(message):
    _emit("warn", message)


def error(message):
    _emit("error", message)
