"""The SDK's own tests, natively: `python3 -m unittest discover -s tests`
from guest-sdk/python."""

import math
import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from fvhost_guest import (  # noqa: E402
    Batch,
    Column,
    Config,
    ConfigError,
    float32,
    float64,
    int32,
    int64,
    ipc,
    list_,
    string,
    timestamp,
    transform,
)
from fvhost_guest import runtime, testing  # noqa: E402


class ColumnTest(unittest.TestCase):
    def test_arithmetic_is_element_wise_and_nulls_stay_null(self):
        c = Column([1, None, 3], int64)
        self.assertEqual((c * 2).to_list(), [2, None, 6])
        self.assertEqual((c * 2).dtype, int64)
        self.assertEqual((c / 2).dtype, float64)
        self.assertEqual((c + Column([1, 1, None], int64)).to_list(), [2, None, None])
        self.assertEqual((c > 1).to_list(), [False, None, True])

    def test_division_by_zero_follows_ieee(self):
        c = Column([1.0, -1.0, 0.0], float64) / 0
        self.assertEqual(c.to_list()[:2], [math.inf, -math.inf])
        self.assertTrue(math.isnan(c.to_list()[2]))

    def test_float32_rounds_as_arrow_does(self):
        self.assertEqual(Column([0.1], float64).cast(float32).to_list(), [0.10000000149011612])

    def test_a_value_that_does_not_fit_names_its_row(self):
        with self.assertRaisesRegex(OverflowError, "row 1"):
            Column([1, 1 << 40], int64).cast(int32)


    def test_a_column_has_no_truth_value_and_masks_combine(self):
        c = Column([1, None, 3], int64)
        with self.assertRaisesRegex(TypeError, "no single truth value"):
            bool(c > 1)
        self.assertEqual(((c > 1) & (c < 5)).to_list(), [False, None, True])
        self.assertEqual(((c > 2) | (c < 2)).to_list(), [True, None, True])
        self.assertEqual((~(c > 1)).to_list(), [True, None, False])
        self.assertTrue((c > 2).any())
        self.assertEqual((c.sum(), c.count(), c.mean(), c.max()), (4, 2, 2.0, 3))

    def test_timestamps_subtract_to_ints_and_move_by_ints(self):
        t = Column([10, 20], timestamp())
        self.assertEqual(((t - t).dtype, (t + 5).dtype), (int64, timestamp()))
        with self.assertRaisesRegex(TypeError, "arithmetic on timestamp"):
            t * 2

    def test_errors_name_the_column_and_row(self):
        b = testing.batch_of({"label": (["a", "b"], string)})
        with self.assertRaisesRegex(ValueError, "column `label` row 0: cannot cast 'a'"):
            b["label"].cast(float32)
        with self.assertRaisesRegex(ipc.IpcError, "column `x`: row 1: 'y' is not a number"):
            ipc.write_stream([("x", float64, [1.0, "y"])], 2)

    def test_a_failure_is_described_location_first_and_as_valid_text(self):
        try:
            raise ValueError("bad \udcff " + "x" * 10_000)
        except ValueError as error:
            described = runtime.describe(error)
        self.assertRegex(described, r"^test_sdk.py:\d+: ValueError: bad \\udcff")
        described.encode("utf-8")
        try:
            raise SystemExit(3)
        except SystemExit as error:
            self.assertIn("called exit(3)", runtime.describe(error))


class BatchTest(unittest.TestCase):
    def batch(self):
        return testing.batch_of({"id": ([1, 2, 3], int64), "rate": ([0.5, None, 2.0], float64)})

    def test_columns_are_added_replaced_and_dropped_by_name(self):
        b = self.batch()
        b["pct"] = b["rate"] * 100.0
        b["source"] = "stream"
        out = b.drop("rate")
        self.assertEqual(out.column_names, ["id", "pct", "source"])
        self.assertEqual(out["source"].to_list(), ["stream"] * 3)
        with self.assertRaisesRegex(KeyError, "no column `nope`"):
            out["nope"]

    def test_rejected_rows_are_left_out_and_reported_by_input_row(self):
        @transform
        def reject_big(batch):
            for i, rate in enumerate(batch["rate"]):
                if rate is not None and rate > 1:
                    batch.reject(i, f"rate {rate} is over 1")
            return batch.filter(batch["id"] != 1)

        runtime._registered["function"] = None
        result = testing.run(reject_big, {"id": ([1, 2, 3], int64), "rate": ([0.5, None, 2.0], float64)})
        self.assertEqual(result.batch["id"].to_list(), [2])
        self.assertEqual(result.rejected, [(2, "rate 2.0 is over 1")])
        runtime._registered["function"] = None

    def test_config_values_parse_by_type_and_name_the_key(self):
        config = Config([("factor", "100"), ("on", "yes"), ("bad", "x")])
        self.assertEqual(config.float("factor"), 100.0)
        self.assertEqual(config.int("factor"), 100)
        self.assertTrue(config.bool("on"))
        self.assertEqual(config.float("missing", 2.5), 2.5)
        with self.assertRaisesRegex(ConfigError, "config key `bad`"):
            config.float("bad")
        self.assertEqual(Config([("tiers", '{"a": 1}')]).json("tiers"), {"a": 1})


class IpcTest(unittest.TestCase):
    def roundtrip(self, columns, rows):
        return ipc.read_stream(ipc.write_stream(columns, rows))

    def test_every_type_survives_its_bytes(self):
        columns = [
            ("i", int32, [1, None, -5]),
            ("l", int64, [1 << 62, 0, None]),
            ("f", float32, [0.5, None, -2.0]),
            ("s", string, ["a", "", None]),
            ("t", timestamp(), [0, 1_700_000_000_000_000, None]),
            ("ls", list_(string), [["x", None], [], None]),
        ]
        decoded, rows = self.roundtrip(columns, 3)
        self.assertEqual(rows, 3)
        self.assertEqual(decoded, columns)

    def test_garbage_is_an_error_not_a_crash(self):
        for data in [b"", b"\xff\xff\xff\xff\x10\x00\x00\x00abc", bytes(64)]:
            with self.assertRaises(ipc.IpcError):
                ipc.read_stream(data)

    def test_a_batch_without_rows_keeps_its_schema(self):
        decoded, rows = self.roundtrip([("i", int64, [])], 0)
        self.assertEqual((decoded, rows), ([("i", int64, [])], 0))


if __name__ == "__main__":
    unittest.main()
