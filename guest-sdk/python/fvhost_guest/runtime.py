"""What the component's entry point calls: the author's registered
function run over IPC bytes. Kept apart from the componentize-py glue so
it runs (and is tested) natively too."""

import inspect
import traceback

from . import ipc
from .batch import Batch, Column
from .config import Config

_registered = {"function": None, "init": None, "arity": 1}
_config = Config()


class TransformError(Exception):
    """A failed call, with the message the host logs and dead-letters by."""


def register(function, init=None):
    """Makes `function` the module's transform (see `fvhost_guest.transform`)."""
    if _registered["function"] is not None and _registered["function"] is not function:
        raise TransformError(
            f"two transforms registered: {_registered['function'].__name__} and {function.__name__}"
        )
    parameters = len(inspect.signature(function).parameters)
    if parameters not in (1, 2):
        raise TransformError(f"{function.__name__} takes (batch) or (batch, config), not {parameters} parameters")
    _registered.update(function=function, init=init, arity=parameters)


def describe(error):
    """One line for the host: where, the exception's type and its message
    (the location first, so it survives the host cutting a long message).
    Never raises: a message that cannot be read or encoded is replaced."""
    try:
        frames = traceback.extract_tb(error.__traceback__)
        where = f"{frames[-1].filename.rsplit('/', 1)[-1]}:{frames[-1].lineno}: " if frames else ""
    except Exception:  # noqa: BLE001 - a broken traceback still gets a message
        where = ""
    try:
        message = str(error)
    except BaseException:  # noqa: BLE001 - an exception whose __str__ raises
        message = "(its message could not be read)"
    if isinstance(error, MemoryError):
        message = "out of memory: the transform reached the view's memory limit" + (f" ({message})" if message else "")
    elif isinstance(error, SystemExit):
        message = f"the transform called exit({error.code!r}); a transform returns a batch or raises"
    return clean(f"{where}{type(error).__name__}: {message}")


def clean(text):
    """`text` as valid UTF-8 for the host: lone surrogates escaped."""
    return str(text).encode("utf-8", errors="backslashreplace").decode("utf-8")


def init(pairs):
    """The host's `init`: keeps the config and runs the author's init hook."""
    global _config
    if _registered["function"] is None:
        raise TransformError("the module registers no transform (decorate a function with @fvhost_guest.transform)")
    _config = Config(pairs)
    if _registered["init"] is not None:
        _registered["init"](_config)


def call(batch, config=None):
    """Runs the registered function on `batch`; the batch it returns,
    without rejected rows, and the rejections by input row."""
    function = _registered["function"]
    if function is None:
        raise TransformError("the module registers no transform")
    config = _config if config is None else config
    out = function(batch, config) if _registered["arity"] == 2 else function(batch)
    if not isinstance(out, Batch):
        raise TransformError(f"{function.__name__} returned {type(out).__name__}, not a Batch")
    rejected = dict(batch.rejected)
    rejected.update(out.rejected)
    for row in rejected:
        if not isinstance(row, int) or not 0 <= row < batch.num_rows:
            raise TransformError(f"rejected row {row!r}, which is not a row of the {batch.num_rows}-row input")
    out._rejected = rejected
    return out.without_rejected(), sorted((row, clean(reason)) for row, reason in rejected.items())


def run(data):
    """The host's `transform`: IPC bytes in, IPC bytes and rejections out."""
    columns, rows = ipc.read_stream(data)
    batch = Batch({name: Column(values, dtype) for name, dtype, values in columns}, rows=rows)
    out, rejected = call(batch)
    encoded = ipc.write_stream(
        [(name, out[name].dtype, out[name].values) for name in out.column_names], out.num_rows
    )
    return encoded, rejected
