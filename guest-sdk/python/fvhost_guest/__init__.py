"""Write fvhost feature-view transforms in Python.

A transform is one function over a batch of rows, registered with
`@transform`; fvhost runs it in a WebAssembly sandbox, a batch at a time::

    from fvhost_guest import Batch, Config, float32, transform

    @transform
    def driver_stats(batch: Batch, config: Config) -> Batch:
        factor = config.float("factor", 100.0)
        batch["conv_percentage"] = (batch["conv_rate"] * factor).cast(float32)
        return batch.drop("conv_rate")

The module must be named `transform.py`. `fvhost build DIR` compiles it
(with componentize-py) into a component implementing the WIT contract
`fvhost:transform@0.1.0`, the same contract Rust transforms implement.
"""

from . import log
from .batch import Batch, Column
from .config import Config, ConfigError
from .runtime import register as _register
from .types import (
    DataType,
    FEAST_TYPES,
    binary,
    bool_,
    float32,
    float64,
    int8,
    int16,
    int32,
    int64,
    list_,
    null,
    string,
    timestamp,
    uint8,
    uint16,
    uint32,
    uint64,
)

CONTRACT_VERSION = "fvhost:transform@0.1.0"


def transform(function=None, *, init=None):
    """Registers `function(batch)` or `function(batch, config)` as the
    module's transform; `init(config)`, if given, runs once per instance
    before any batch (an exception there fails the module load)."""

    def register(function):
        _register(function, init)
        return function

    return register(function) if function is not None else register


__all__ = [
    "Batch",
    "Column",
    "Config",
    "ConfigError",
    "DataType",
    "FEAST_TYPES",
    "CONTRACT_VERSION",
    "binary",
    "bool_",
    "float32",
    "float64",
    "int8",
    "int16",
    "int32",
    "int64",
    "list_",
    "log",
    "null",
    "string",
    "timestamp",
    "transform",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
]
