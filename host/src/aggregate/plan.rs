//! A view's aggregations resolved for computing: each with its column's
//! type, window length in hops, and the empty partial it starts from.

use super::partial::Partial;
use super::scalar::Scalar;
use crate::repo::Windowing;
use crate::repo::aggregation::{AggregateFunction, Aggregation};
use crate::types::{FeatureType, ScalarType};

/// Longest text or bytes value `min`, `max` and `last` keep (see
/// [`WindowPlan::refuse_values`]).
pub const MAX_KEPT_VALUE_BYTES: usize = 1024;

/// How a view's windows are computed.
#[derive(Debug, Clone)]
pub struct WindowPlan {
    /// What the stored tiles depend on (hop, functions, columns and their
    /// types, windows): a state written under another plan has its tiles dropped.
    fingerprint: u64,
    /// The source the offsets are of (its topic): offsets stored for
    /// another source are dropped.
    source_fingerprint: u64,
    aggregations: Vec<Aggregation>,
    column_types: Vec<ScalarType>,
    hop_micros: i64,
    window_hops: Vec<i64>,
}

/// A windowing whose columns are not scalar columns of the view.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("aggregation `{0}`: its column is not a scalar column of the view")]
pub struct PlanError(pub String);

impl WindowPlan {
    /// The plan of a view's `windowing` (its aggregations read its columns).
    pub fn new(windowing: &Windowing) -> Result<Self, PlanError> {
        let hop_micros = i64::try_from(windowing.hop.as_micros())
            .unwrap_or(i64::MAX)
            .max(1);
        let mut column_types = Vec::new();
        let mut window_hops = Vec::new();
        for aggregation in &windowing.aggregations {
            let column_type = windowing
                .columns
                .iter()
                .find(|column| column.name == aggregation.column)
                .and_then(|column| match column.dtype {
                    FeatureType::Scalar(scalar) => Some(scalar),
                    FeatureType::List(_) => None,
                })
                .ok_or_else(|| PlanError(aggregation.name.clone()))?;
            column_types.push(column_type);
            let window = i64::try_from(aggregation.time_window.as_micros()).unwrap_or(i64::MAX);
            window_hops.push((window / hop_micros).max(1));
        }
        let canonical: String = std::iter::once(format!("hop={}", hop_micros))
            .chain(
                windowing
                    .aggregations
                    .iter()
                    .zip(&column_types)
                    .zip(&window_hops)
                    .map(|((a, column_type), hops)| {
                        let cap = match a.function {
                            AggregateFunction::CountDistinct => format!("<={}", a.max_distinct),
                            _ => String::new(),
                        };
                        format!("{:?}({}:{column_type}){cap}x{hops}", a.function, a.column)
                    }),
            )
            .collect::<Vec<_>>()
            .join("|");
        Ok(Self {
            fingerprint: fingerprint(&canonical),
            source_fingerprint: fingerprint(""),
            aggregations: windowing.aggregations.clone(),
            column_types,
            hop_micros,
            window_hops,
        })
    }

    /// The same plan for events of `source` (a Kafka topic).
    pub fn for_source(mut self, source: &str) -> Self {
        self.source_fingerprint = fingerprint(source);
        self
    }

    pub fn fingerprint(&self) -> u64 {
        self.fingerprint
    }

    pub fn source_fingerprint(&self) -> u64 {
        self.source_fingerprint
    }

    pub fn aggregations(&self) -> &[Aggregation] {
        &self.aggregations
    }

    /// The column type aggregation `i` reads.
    pub fn column_type(&self, i: usize) -> ScalarType {
        self.column_types[i]
    }

    /// A hop's length in microseconds.
    pub fn hop_micros(&self) -> i64 {
        self.hop_micros
    }

    /// The hop an event time falls in: hop `h` spans `[h * hop, (h + 1) * hop)`.
    pub fn hop_of(&self, event_micros: i64) -> i64 {
        event_micros.div_euclid(self.hop_micros)
    }

    /// Aggregation `i`'s window, in hops.
    pub fn window_hops(&self, i: usize) -> i64 {
        self.window_hops[i]
    }

    /// Most tiles an entity keeps: the longest window's hops.
    pub fn most_tiles(&self) -> usize {
        self.window_hops.iter().copied().max().unwrap_or(1) as usize
    }

    /// The oldest hop a window ending at `newest_hop` can hold.
    pub fn first_retained_hop(&self, newest_hop: i64) -> i64 {
        newest_hop - self.most_tiles() as i64 + 1
    }

    /// Why an event's `values` (one per aggregation) cannot be kept, if so:
    /// `min`, `max` and `last` keep a value itself in every tile, so a text
    /// or bytes value over [`MAX_KEPT_VALUE_BYTES`] would make the entity's
    /// state grow with it.
    pub fn refuse_values(&self, values: &[Option<Scalar>]) -> Option<String> {
        self.aggregations
            .iter()
            .zip(values)
            .find_map(|(aggregation, value)| {
                let keeps_value = matches!(
                    aggregation.function,
                    AggregateFunction::Min | AggregateFunction::Max | AggregateFunction::Last
                );
                match value {
                    Some(Scalar::Bytes(bytes)) if keeps_value && bytes.len() > MAX_KEPT_VALUE_BYTES => {
                        Some(format!(
                            "column `{}`: {} keeps its value in each tile; {} bytes is over the {MAX_KEPT_VALUE_BYTES} it keeps",
                            aggregation.column,
                            aggregation.function_name,
                            bytes.len()
                        ))
                    }
                    _ => None,
                }
            })
    }

    /// A tile before any event.
    pub fn empty_tile(&self) -> Vec<Partial> {
        (0..self.aggregations.len())
            .map(|i| self.empty_partial(i))
            .collect()
    }

    pub fn empty_partial(&self, i: usize) -> Partial {
        Partial::empty(&self.aggregations[i], self.column_types[i])
    }
}

/// A stable 64-bit digest of `text` (the first 8 bytes of its SHA-256).
fn fingerprint(text: &str) -> u64 {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(text.as_bytes());
    u64::from_le_bytes(digest[..8].try_into().unwrap_or_default())
}
