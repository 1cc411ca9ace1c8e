//! Windowed aggregations on a stream feature view (Feast's `aggregations`):
//! what a repo declares, checked. Computing them (tiles per entity per hop,
//! merged into window values at write time) is the data path's business.
//!
//! Output names follow Feast's `Aggregation.resolved_name`: the given
//! `name`, else `{function}_{column}_{seconds}s` (`count_trips_3600s`), the
//! function spelled as written.

use std::time::Duration;

use crate::types::{FeatureType, ScalarType};

/// The hop used when a view gives no `tiling_hop_size` (Feast's default).
pub const DEFAULT_HOP: Duration = Duration::from_secs(300);

/// The shortest hop: tiles are kept per hop, so a hop of microseconds would
/// make an entity's state grow with its event count.
pub const MIN_HOP: Duration = Duration::from_secs(1);

/// Most hops in one window: an entity keeps up to this many tiles.
pub const MAX_HOPS_PER_WINDOW: u128 = 4096;

/// The longest window (and hop): a year.
pub const MAX_WINDOW: Duration = Duration::from_secs(366 * 86_400);

/// Distinct values a `count_distinct` tile keeps when `max_distinct` is not given.
pub const DEFAULT_MAX_DISTINCT: usize = 1000;

/// Most distinct values an entity's tiles may keep for one `count_distinct`
/// (`max_distinct` times the tiles the view keeps), so its stored state
/// stays bounded (at most 65 bytes a value).
pub const MAX_DISTINCT_PER_ENTITY: u128 = 1 << 20;

/// A windowed aggregation of one column.
#[derive(Debug, Clone, PartialEq)]
pub struct Aggregation {
    /// The column aggregated: a transform output column, or a source column
    /// when the view has no transform.
    pub column: String,
    pub function: AggregateFunction,
    /// The function as the repo spells it (`avg` and `mean` are one function).
    pub function_name: String,
    pub time_window: Duration,
    /// Accepted for Feast's sake; values advance every hop whatever it says.
    pub slide_interval: Duration,
    /// The feature the value is written as.
    pub name: String,
    /// The value's type (see [`AggregateFunction::output_type`]).
    pub output_type: ScalarType,
    /// For `count_distinct`: the distinct values one tile (and one window)
    /// counts exactly; past it the count is a lower bound.
    pub max_distinct: usize,
}

/// The functions fvhost computes, by the names Feast's engines accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AggregateFunction {
    Count,
    Sum,
    Mean,
    Min,
    Max,
    /// Sample standard deviation.
    Std,
    /// Sample variance.
    Var,
    /// Exact distinct count, up to a cap per entity and window.
    CountDistinct,
    /// The value of the newest event in the window.
    Last,
}

/// Why an aggregation cannot be declared so.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AggregationError {
    #[error(
        "unknown function `{0}` (known: count, sum, mean or avg, min, max, std or stddev, var or variance, count_distinct, last)"
    )]
    UnknownFunction(String),
    #[error("`{function}` needs a numeric column; `{column}` is {found}")]
    NotNumeric {
        function: String,
        column: String,
        found: FeatureType,
    },
    #[error("`{function}` cannot aggregate list column `{column}` ({found})")]
    ListColumn {
        function: String,
        column: String,
        found: FeatureType,
    },
    #[error("must be positive")]
    NotPositive,
    #[error("{0} is longer than the longest window fvhost keeps (366d)")]
    TooLong(String),
    #[error("{window} is not a multiple of the hop ({hop})")]
    NotMultipleOfHop { window: String, hop: String },
    #[error(
        "{window} spans {hops} hops of {hop}; at most {MAX_HOPS_PER_WINDOW} are kept per entity (a longer tiling_hop_size)"
    )]
    TooManyHops {
        window: String,
        hop: String,
        hops: u128,
    },
}

impl AggregateFunction {
    /// The function a repo names, in any of Feast's spellings.
    pub fn parse(name: &str) -> Result<Self, AggregationError> {
        Ok(match name {
            "count" => Self::Count,
            "sum" => Self::Sum,
            "mean" | "avg" => Self::Mean,
            "min" => Self::Min,
            "max" => Self::Max,
            "std" | "stddev" => Self::Std,
            "var" | "variance" => Self::Var,
            "count_distinct" => Self::CountDistinct,
            "last" => Self::Last,
            other => return Err(AggregationError::UnknownFunction(other.to_string())),
        })
    }

    /// The type of the aggregate of a column of type `input`: counts are
    /// Int64; mean, std and var Float64; a sum of integers Int64, of floats
    /// Float64; min, max and last keep the column's type.
    pub fn output_type(
        self,
        function_name: &str,
        column: &str,
        input: FeatureType,
    ) -> Result<ScalarType, AggregationError> {
        use ScalarType::*;
        let FeatureType::Scalar(scalar) = input else {
            return match self {
                Self::Count => Ok(Int64),
                _ => Err(AggregationError::ListColumn {
                    function: function_name.to_string(),
                    column: column.to_string(),
                    found: input,
                }),
            };
        };
        let numeric = matches!(scalar, Int32 | Int64 | Float32 | Float64);
        let not_numeric = || AggregationError::NotNumeric {
            function: function_name.to_string(),
            column: column.to_string(),
            found: input,
        };
        match self {
            Self::Count | Self::CountDistinct => Ok(Int64),
            Self::Last => Ok(scalar),
            Self::Min | Self::Max if numeric || scalar == UnixTimestamp => Ok(scalar),
            Self::Sum if matches!(scalar, Int32 | Int64) => Ok(Int64),
            Self::Sum | Self::Mean | Self::Std | Self::Var if numeric => Ok(Float64),
            _ => Err(not_numeric()),
        }
    }
}

impl Aggregation {
    /// Feast's default output name: `{function}_{column}_{seconds}s`.
    pub fn default_name(function_name: &str, column: &str, time_window: Duration) -> String {
        format!("{function_name}_{column}_{}s", time_window.as_secs())
    }
}

/// Checks a window or slide against the hop: positive, and a whole number of hops.
pub fn check_multiple_of_hop(window: Duration, hop: Duration) -> Result<(), AggregationError> {
    if window.is_zero() {
        return Err(AggregationError::NotPositive);
    }
    let show = super::duration::show_duration;
    if window > MAX_WINDOW {
        return Err(AggregationError::TooLong(show(window)));
    }
    if !window.as_nanos().is_multiple_of(hop.as_nanos()) {
        return Err(AggregationError::NotMultipleOfHop {
            window: show(window),
            hop: show(hop),
        });
    }
    let hops = window.as_nanos() / hop.as_nanos();
    if hops > MAX_HOPS_PER_WINDOW {
        return Err(AggregationError::TooManyHops {
            window: show(window),
            hop: show(hop),
            hops,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ScalarType::*;

    fn output(function: &str, input: FeatureType) -> Result<ScalarType, AggregationError> {
        AggregateFunction::parse(function)?.output_type(function, "c", input)
    }

    #[test]
    fn output_types_follow_the_function_and_the_column() {
        let int = FeatureType::Scalar(Int32);
        let float = FeatureType::Scalar(Float32);
        let text = FeatureType::Scalar(String);
        assert_eq!(output("count", text), Ok(Int64));
        assert_eq!(output("count_distinct", text), Ok(Int64));
        assert_eq!(output("sum", int), Ok(Int64));
        assert_eq!(output("sum", float), Ok(Float64));
        for f in ["mean", "avg", "std", "stddev", "var", "variance"] {
            assert_eq!(output(f, int), Ok(Float64), "{f}");
        }
        assert_eq!(output("min", float), Ok(Float32));
        assert_eq!(
            output("max", FeatureType::Scalar(UnixTimestamp)),
            Ok(UnixTimestamp)
        );
        assert_eq!(output("last", text), Ok(String));
        assert!(matches!(
            output("mean", text),
            Err(AggregationError::NotNumeric { .. })
        ));
        assert!(matches!(
            output("sum", FeatureType::List(Int64)),
            Err(AggregationError::ListColumn { .. })
        ));
        assert_eq!(
            output("median", int),
            Err(AggregationError::UnknownFunction("median".into()))
        );
    }

    #[test]
    fn names_default_as_feast_resolves_them() {
        assert_eq!(
            Aggregation::default_name("avg", "conv_rate", Duration::from_secs(3600)),
            "avg_conv_rate_3600s"
        );
    }

    #[test]
    fn windows_are_whole_hops() {
        let hop = Duration::from_secs(300);
        assert_eq!(
            check_multiple_of_hop(Duration::from_secs(3600), hop),
            Ok(())
        );
        assert_eq!(
            check_multiple_of_hop(Duration::ZERO, hop),
            Err(AggregationError::NotPositive)
        );
        assert!(matches!(
            check_multiple_of_hop(Duration::from_secs(3700), hop),
            Err(AggregationError::NotMultipleOfHop { .. })
        ));
        assert!(matches!(
            check_multiple_of_hop(Duration::from_secs(86_400 * 30), hop),
            Err(AggregationError::TooManyHops { hops: 8640, .. })
        ));
    }
}
