"""Unit tests of `{{name}}`, natively: `python3 -m unittest` in this folder
with the SDK (guest-sdk/python) on PYTHONPATH."""

import unittest

from fvhost_guest import float64, int64, testing

import transform


class TransformTest(unittest.TestCase):
    def test_values_are_scaled_and_negative_ones_rejected(self):
        out = testing.run(
            transform.{{name}},
            {"entity_id": ([1, 2, 3], int64), "value": ([0.5, None, -1.0], float64)},
            config={"factor": "10"},
        )
        self.assertEqual(out.batch.column_names, ["entity_id", "value_scaled"])
        self.assertEqual(out.batch["value_scaled"].to_list(), [5.0, None])
        self.assertEqual(out.rejected, [(2, "value -1.0 is negative")])


if __name__ == "__main__":
    unittest.main()
