"""The `driver_hourly_stats_stream` transform of the driver-ranking example,
in Python: `conv_rate` and `acc_rate` (fractions, Float64 from the stream's
JSON) become `conv_percentage` and `acc_percentage` (Float32 features) and
the inputs are dropped. Every other column (the join key, the timestamps)
passes through untouched. Feast's own example computes the same columns
over a DataFrame."""

from fvhost_guest import Batch, Config, float32, transform

RATES = {"conv_rate": "conv_percentage", "acc_rate": "acc_percentage"}


@transform
def driver_stats(batch: Batch, config: Config) -> Batch:
    factor = config.float("factor", 100.0)
    for rate, feature in RATES.items():
        batch[feature] = (batch[rate] * factor).cast(float32)
    return batch.drop(*RATES)
