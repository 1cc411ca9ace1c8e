"""The view's `transform.config`, as the host passes it to `init`.

Scalars arrive as their YAML text (`factor: 100` reads as `"100"`);
nested values arrive as JSON text.
"""

# Imported here, not inside a function: componentize-py bundles only the
# modules imported when the component is built.
import json


class ConfigError(ValueError):
    """A config value that does not parse, naming the key."""


class Config:
    """Key/value pairs, read with a default and parsed by type."""

    def __init__(self, pairs=()):
        self._pairs = [(str(k), str(v)) for k, v in pairs]

    def get(self, key, default=None):
        """The raw text of `key`, or `default` when the view did not set it."""
        for k, v in self._pairs:
            if k == key:
                return v
        return default

    def __contains__(self, key):
        return any(k == key for k, _ in self._pairs)

    def items(self):
        return list(self._pairs)

    def _parsed(self, key, default, parse, what):
        text = self.get(key)
        if text is None:
            return default
        try:
            return parse(text)
        except ValueError:
            raise ConfigError(f"config key `{key}`: cannot parse {text!r} as {what}") from None

    def float(self, key, default=None):
        return self._parsed(key, default, float, "a number")

    def int(self, key, default=None):
        return self._parsed(key, default, int, "an integer")

    def bool(self, key, default=None):
        def parse(text):
            lowered = text.strip().lower()
            if lowered in ("true", "yes", "on", "1"):
                return True
            if lowered in ("false", "no", "off", "0"):
                return False
            raise ValueError(text)

        return self._parsed(key, default, parse, "a bool")

    def str(self, key, default=None):
        return self.get(key, default)

    def json(self, key, default=None):
        return self._parsed(key, default, json.loads, "JSON")
