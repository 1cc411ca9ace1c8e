"""Running a transform natively, as the host would: the input goes through
Arrow IPC bytes and back, so a test sees what the component would."""

from . import ipc, runtime
from .batch import Batch, Column
from .config import Config


class Result:
    """A test run's output batch and rejections `(input row, reason)`."""

    def __init__(self, batch, rejected):
        self.batch = batch
        self.rejected = rejected


def batch_of(columns):
    """A Batch from `{name: (values, dtype)}`, through IPC bytes as the host sends it."""
    encoded = ipc.write_stream([(n, dtype, list(values)) for n, (values, dtype) in columns.items()], _rows(columns))
    decoded, rows = ipc.read_stream(encoded)
    return Batch({n: Column(v, dtype) for n, dtype, v in decoded}, rows=rows)


def run(function, columns, config=None):
    """Runs `function` (a registered transform) on `columns` (`{name:
    (values, dtype)}`) with `config` (`{key: text}`); its output is
    encoded and decoded as the host would read it."""
    runtime.register(function)
    config = Config((config or {}).items())
    if runtime._registered["init"] is not None:
        runtime._registered["init"](config)
    out, rejected = runtime.call(batch_of(columns), config)
    encoded = ipc.write_stream([(n, out[n].dtype, out[n].values) for n in out.column_names], out.num_rows)
    decoded, rows = ipc.read_stream(encoded)
    return Result(Batch({n: Column(v, dtype) for n, dtype, v in decoded}, rows=rows), rejected)


def _rows(columns):
    lengths = {len(values) for values, _ in columns.values()}
    if len(lengths) > 1:
        raise ValueError(f"columns of different lengths: {sorted(lengths)}")
    return lengths.pop() if lengths else 0
