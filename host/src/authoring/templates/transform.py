"""The `{{name}}` transform: one function over a batch of the view's input
rows, returning the rows the view writes (its join keys, event time and
declared features). Build it with `fvhost build {{name}}`."""

from fvhost_guest import Batch, Config, float64, transform


@transform
def {{name}}(batch: Batch, config: Config) -> Batch:
    factor = config.float("factor", 1.0)
    # Columns by name, element-wise arithmetic; nulls stay null.
    batch["value_scaled"] = (batch["value"] * factor).cast(float64)
    for row, value in enumerate(batch["value"]):
        if value is not None and value < 0:
            batch.reject(row, f"value {value} is negative")
    return batch.drop("value")
