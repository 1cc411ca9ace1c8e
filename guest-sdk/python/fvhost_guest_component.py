"""The component's entry point (componentize-py's app module): fvhost's
`transformer` export, running the function the author's `transform.py`
registers. Authors never edit this file."""

import transform as _author  # noqa: F401 - registers the author's function
from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import types

from fvhost_guest import runtime


class Transformer(exports.Transformer):
    def init(self, config):
        try:
            runtime.init(config)
        except BaseException as error:  # noqa: BLE001 - every failure is the host's to report
            raise Err(runtime.describe(error))

    def transform(self, batch):
        try:
            data, rejected = runtime.run(batch)
        except BaseException as error:  # noqa: BLE001 - exit, KeyboardInterrupt, ... too
            raise Err(runtime.describe(error))
        return types.Output(
            batch=data,
            rejected=[types.RejectedRow(row=row, reason=reason) for row, reason in rejected],
        )
