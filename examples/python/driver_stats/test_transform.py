"""Unit tests of the transform, natively: `python3 -m unittest` in this
folder, with guest-sdk/python on PYTHONPATH (scripts/test.sh runs them)."""

import unittest

from fvhost_guest import float32, float64, int64, testing

import transform


class DriverStatsTest(unittest.TestCase):
    def test_rates_become_percentages_and_nulls_stay_null(self):
        out = testing.run(
            transform.driver_stats,
            {
                "driver_id": ([1001, 1002], int64),
                "conv_rate": ([0.5, None], float64),
                "acc_rate": ([0.25, 1.0], float64),
            },
            config={"factor": "100"},
        )
        self.assertEqual(out.batch.column_names, ["driver_id", "conv_percentage", "acc_percentage"])
        self.assertEqual(out.batch["conv_percentage"].dtype, float32)
        self.assertEqual(out.batch["conv_percentage"].to_list(), [50.0, None])
        self.assertEqual(out.batch["acc_percentage"].to_list(), [25.0, 100.0])
        self.assertEqual(out.rejected, [])


if __name__ == "__main__":
    unittest.main()
