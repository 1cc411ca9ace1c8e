"""A Python transform that attacks its host, in the way config key `attack`
names: the Python side of tests/guests/hostile (see tests/python_guests.rs)."""

import os
import sys

from fvhost_guest import Batch, Config, transform


def spin():
    n = 0
    while True:
        n += 1


def hoard():
    kept = []
    while True:
        kept.append(bytearray(1 << 20))


def escape():
    """Tries the filesystem, the environment and the network; says what it found."""
    try:
        with open("/etc/passwd", "rb") as f:
            filesystem = f"read {len(f.read())} bytes of /etc/passwd"
    except OSError as e:
        filesystem = f"denied ({type(e).__name__})"
    environment = f"{len(os.environ)} variables, {len(sys.argv)} arguments"
    try:
        import socket  # noqa: F401 - only its absence matters

        network = "a socket module exists"
    except ImportError:
        network = "denied (no socket module)"
    return f"filesystem: {filesystem}; environment: {environment}; network: {network}"


@transform
def hostile(batch: Batch, config: Config) -> Batch:
    attack = config.get("attack", "none")
    if attack == "loop":
        spin()
    if attack == "memory":
        hoard()
    if attack == "escape":
        raise PermissionError(escape())
    if attack == "raise":
        raise ValueError("hostile guest raised on purpose")
    if attack == "exit":
        sys.exit(3)
    return batch
