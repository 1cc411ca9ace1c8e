"""Reads Arrow IPC stream bytes with the SDK and writes them back: the
host's tests feed it arrow-rs's bytes and compare what comes back.

    python3 ipc_roundtrip.py IN OUT

Prints the decoded columns as JSON (bytes as hex) on stdout."""

import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from fvhost_guest import ipc  # noqa: E402


def plain(value):
    if isinstance(value, (bytes, bytearray)):
        return {"hex": bytes(value).hex()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, float) and value != value:
        return "NaN"
    return value


def main():
    source, target = sys.argv[1], sys.argv[2]
    with open(source, "rb") as f:
        columns, rows = ipc.read_stream(f.read())
    with open(target, "wb") as f:
        f.write(ipc.write_stream(columns, rows))
    print(json.dumps({"rows": rows, "columns": {name: [repr(dtype), plain(values)] for name, dtype, values in columns}}))


if __name__ == "__main__":
    main()
