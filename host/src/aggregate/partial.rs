//! The running state of one aggregation over the events of one tile (its
//! intermediate representation), how two merge, what a window of them
//! comes to, and the bytes they are kept as.

use std::collections::BTreeSet;

use super::scalar::Scalar;
use crate::repo::aggregation::{AggregateFunction, Aggregation};
use crate::types::ScalarType;

/// One aggregation's state over some events. Null values are skipped by
/// every function (a count counts the non-null values).
#[derive(Debug, Clone, PartialEq)]
pub enum Partial {
    Count(i64),
    /// Integer sums are exact (i128) and clamped to Int64 when read.
    SumInt(i128),
    SumFloat(f64),
    /// Count, sum and sum of squared deviations from the mean (Chan et al.),
    /// for mean, var and std.
    Moments {
        n: i64,
        sum: f64,
        m2: f64,
    },
    Min(Option<Scalar>),
    Max(Option<Scalar>),
    /// The value of the newest event (by event time; a tie goes to the later one).
    Last(Option<(i64, Scalar)>),
    /// Up to `cap` distinct values (the aggregation's `max_distinct`); past
    /// it no new value is recorded and the count is a lower bound.
    Distinct {
        values: BTreeSet<Vec<u8>>,
        overflowed: bool,
        cap: usize,
    },
}

/// What a window of partials comes to, typed by the aggregation's output.
#[derive(Debug, Clone, PartialEq)]
pub enum WindowValue {
    Null,
    Value(Scalar),
}

/// Bytes that are not a tile fvhost wrote.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("stored tile is corrupt: {0}")]
pub struct CorruptTile(pub &'static str);

impl Partial {
    /// The state before any event, for `aggregation` over a column of `column`'s type.
    pub fn empty(aggregation: &Aggregation, column: ScalarType) -> Self {
        use AggregateFunction::*;
        match aggregation.function {
            Count => Self::Count(0),
            Sum if matches!(column, ScalarType::Int32 | ScalarType::Int64) => Self::SumInt(0),
            Sum => Self::SumFloat(0.0),
            Mean | Std | Var => Self::Moments {
                n: 0,
                sum: 0.0,
                m2: 0.0,
            },
            Min => Self::Min(None),
            Max => Self::Max(None),
            Last => Self::Last(None),
            CountDistinct => Self::Distinct {
                values: BTreeSet::new(),
                overflowed: false,
                cap: aggregation.max_distinct,
            },
        }
    }

    /// Adds one event's value (at `event_micros`).
    pub fn add(&mut self, value: Option<&Scalar>, event_micros: i64) {
        let Some(value) = value else { return };
        match self {
            Self::Count(n) => *n = n.saturating_add(1),
            Self::SumInt(sum) => {
                if let Scalar::Int(v) = value {
                    *sum += i128::from(*v);
                }
            }
            Self::SumFloat(sum) => *sum += value.as_f64(),
            Self::Moments { .. } => self.merge(&Self::Moments {
                n: 1,
                sum: value.as_f64(),
                m2: 0.0,
            }),
            Self::Min(_) | Self::Max(_) | Self::Last(_) | Self::Distinct { .. } => {
                self.merge(&Self::single(self, value, event_micros));
            }
        }
    }

    fn single(like: &Self, value: &Scalar, event_micros: i64) -> Self {
        match like {
            Self::Min(_) => Self::Min(Some(value.clone())),
            Self::Max(_) => Self::Max(Some(value.clone())),
            Self::Last(_) => Self::Last(Some((event_micros, value.clone()))),
            Self::Distinct { cap, .. } => Self::Distinct {
                values: BTreeSet::from([encode_scalar_key(value)]),
                overflowed: false,
                cap: *cap,
            },
            _ => like.clone(),
        }
    }

    /// Folds `other` (the same aggregation over other events) into `self`.
    pub fn merge(&mut self, other: &Self) {
        match (self, other) {
            (Self::Count(a), Self::Count(b)) => *a = a.saturating_add(*b),
            (Self::SumInt(a), Self::SumInt(b)) => *a += b,
            (Self::SumFloat(a), Self::SumFloat(b)) => *a += b,
            (
                Self::Moments { n, sum, m2 },
                Self::Moments {
                    n: n_b,
                    sum: sum_b,
                    m2: m2_b,
                },
            ) => {
                if *n_b == 0 {
                    return;
                }
                if *n == 0 {
                    (*n, *sum, *m2) = (*n_b, *sum_b, *m2_b);
                    return;
                }
                let (n_a, n_b_f) = (*n as f64, *n_b as f64);
                let delta = sum_b / n_b_f - *sum / n_a;
                *m2 += m2_b + delta * delta * n_a * n_b_f / (n_a + n_b_f);
                *n = n.saturating_add(*n_b);
                *sum += sum_b;
            }
            (Self::Min(a), Self::Min(Some(b))) if a.as_ref().is_none_or(|a| b.less_than(a)) => {
                *a = Some(b.clone());
            }
            (Self::Max(a), Self::Max(Some(b))) if a.as_ref().is_none_or(|a| a.less_than(b)) => {
                *a = Some(b.clone());
            }
            (Self::Last(a), Self::Last(Some((time_b, b))))
                if a.as_ref().is_none_or(|(time_a, _)| time_a <= time_b) =>
            {
                *a = Some((*time_b, b.clone()));
            }
            (
                Self::Distinct {
                    values,
                    overflowed,
                    cap,
                },
                Self::Distinct {
                    values: others,
                    overflowed: other_overflowed,
                    ..
                },
            ) => {
                *overflowed |= other_overflowed;
                for value in others {
                    if values.len() >= *cap && !values.contains(value) {
                        *overflowed = true;
                        continue;
                    }
                    values.insert(value.clone());
                }
            }
            _ => {}
        }
    }

    /// The aggregate of the events folded in, as `function` reports it.
    pub fn finish(&self, function: AggregateFunction) -> WindowValue {
        use AggregateFunction::*;
        let value = |v| WindowValue::Value(v);
        match (self, function) {
            (Self::Count(n), _) => value(Scalar::Int(*n)),
            (Self::SumInt(sum), _) => value(Scalar::Int(
                (*sum).clamp(i64::MIN.into(), i64::MAX.into()) as i64,
            )),
            (Self::SumFloat(sum), _) => value(Scalar::Float(*sum)),
            (Self::Moments { n, sum, .. }, Mean) if *n > 0 => value(Scalar::Float(sum / *n as f64)),
            (Self::Moments { n, m2, .. }, Var) if *n > 1 => {
                value(Scalar::Float((m2 / (*n - 1) as f64).max(0.0)))
            }
            (Self::Moments { n, m2, .. }, Std) if *n > 1 => {
                value(Scalar::Float((m2 / (*n - 1) as f64).max(0.0).sqrt()))
            }
            (Self::Min(Some(v)) | Self::Max(Some(v)) | Self::Last(Some((_, v))), _) => {
                value(v.clone())
            }
            (Self::Distinct { values, .. }, _) => value(Scalar::Int(values.len() as i64)),
            _ => WindowValue::Null,
        }
    }

    /// Appends the partial's bytes to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Self::Count(n) => {
                out.push(1);
                out.extend_from_slice(&n.to_le_bytes());
            }
            Self::SumInt(sum) => {
                out.push(2);
                out.extend_from_slice(&sum.to_le_bytes());
            }
            Self::SumFloat(sum) => {
                out.push(3);
                out.extend_from_slice(&sum.to_le_bytes());
            }
            Self::Moments { n, sum, m2 } => {
                out.push(4);
                out.extend_from_slice(&n.to_le_bytes());
                out.extend_from_slice(&sum.to_le_bytes());
                out.extend_from_slice(&m2.to_le_bytes());
            }
            Self::Min(v) | Self::Max(v) => {
                out.push(if matches!(self, Self::Min(_)) { 5 } else { 6 });
                encode_optional(v.as_ref(), out);
            }
            Self::Last(v) => {
                out.push(7);
                match v {
                    None => out.push(0),
                    Some((time, value)) => {
                        out.push(1);
                        out.extend_from_slice(&time.to_le_bytes());
                        encode_scalar(value, out);
                    }
                }
            }
            Self::Distinct {
                values, overflowed, ..
            } => {
                out.push(8);
                out.push(u8::from(*overflowed));
                out.extend_from_slice(&(values.len() as u32).to_le_bytes());
                for value in values {
                    put_bytes(value, out);
                }
            }
        }
    }

    /// Reads one partial from the front of `bytes`, advancing it; a
    /// `count_distinct` partial holds at most `max_distinct` values.
    pub fn decode(bytes: &mut &[u8], max_distinct: usize) -> Result<Self, CorruptTile> {
        Ok(match take_u8(bytes)? {
            1 => Self::Count(non_negative(i64::from_le_bytes(take(bytes)?))?),
            2 => Self::SumInt(i128::from_le_bytes(take(bytes)?)),
            3 => Self::SumFloat(f64::from_le_bytes(take(bytes)?)),
            4 => Self::Moments {
                n: non_negative(i64::from_le_bytes(take(bytes)?))?,
                sum: f64::from_le_bytes(take(bytes)?),
                m2: f64::from_le_bytes(take(bytes)?),
            },
            5 => Self::Min(decode_optional(bytes)?),
            6 => Self::Max(decode_optional(bytes)?),
            7 => Self::Last(match take_u8(bytes)? {
                0 => None,
                _ => Some((i64::from_le_bytes(take(bytes)?), decode_scalar(bytes)?)),
            }),
            8 => {
                let overflowed = take_u8(bytes)? != 0;
                let count = u32::from_le_bytes(take(bytes)?) as usize;
                if count > max_distinct {
                    return Err(CorruptTile("more distinct values than the cap"));
                }
                let mut values = BTreeSet::new();
                for _ in 0..count {
                    let value = take_bytes(bytes)?;
                    if value.len() > DISTINCT_KEY_MAX {
                        return Err(CorruptTile("distinct value longer than kept"));
                    }
                    values.insert(value.to_vec());
                }
                Self::Distinct {
                    values,
                    overflowed,
                    cap: max_distinct,
                }
            }
            _ => return Err(CorruptTile("unknown partial")),
        })
    }
}

/// Longest distinct-value key kept as is; longer values are kept as their
/// SHA-256 (so a tile's size stays bounded whatever the values' length).
const DISTINCT_KEY_MAX: usize = 64;

fn non_negative(count: i64) -> Result<i64, CorruptTile> {
    if count < 0 {
        return Err(CorruptTile("negative count"));
    }
    Ok(count)
}

/// The key a distinct value is counted by (its type and bytes, or a digest
/// of them for long values; a collision is as unlikely as SHA-256's).
fn encode_scalar_key(value: &Scalar) -> Vec<u8> {
    use sha2::{Digest, Sha256};
    let mut out = Vec::new();
    encode_scalar(value, &mut out);
    if out.len() <= DISTINCT_KEY_MAX {
        return out;
    }
    let mut digest = vec![0xff];
    digest.extend_from_slice(&Sha256::digest(&out));
    digest
}

fn encode_optional(value: Option<&Scalar>, out: &mut Vec<u8>) {
    match value {
        None => out.push(0),
        Some(value) => {
            out.push(1);
            encode_scalar(value, out);
        }
    }
}

fn decode_optional(bytes: &mut &[u8]) -> Result<Option<Scalar>, CorruptTile> {
    match take_u8(bytes)? {
        0 => Ok(None),
        _ => decode_scalar(bytes).map(Some),
    }
}

fn encode_scalar(value: &Scalar, out: &mut Vec<u8>) {
    match value {
        Scalar::Int(v) => {
            out.push(1);
            out.extend_from_slice(&v.to_le_bytes());
        }
        Scalar::Float(v) => {
            out.push(2);
            out.extend_from_slice(&v.to_le_bytes());
        }
        Scalar::Bool(v) => {
            out.push(3);
            out.push(u8::from(*v));
        }
        Scalar::Bytes(v) => {
            out.push(4);
            put_bytes(v, out);
        }
    }
}

fn decode_scalar(bytes: &mut &[u8]) -> Result<Scalar, CorruptTile> {
    Ok(match take_u8(bytes)? {
        1 => Scalar::Int(i64::from_le_bytes(take(bytes)?)),
        2 => Scalar::Float(f64::from_le_bytes(take(bytes)?)),
        3 => Scalar::Bool(take_u8(bytes)? != 0),
        4 => Scalar::Bytes(take_bytes(bytes)?.to_vec()),
        _ => return Err(CorruptTile("unknown value type")),
    })
}

fn put_bytes(value: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&(value.len() as u32).to_le_bytes());
    out.extend_from_slice(value);
}

fn take<const N: usize>(bytes: &mut &[u8]) -> Result<[u8; N], CorruptTile> {
    let (head, rest) = bytes
        .split_first_chunk::<N>()
        .ok_or(CorruptTile("cut short"))?;
    *bytes = rest;
    Ok(*head)
}

fn take_u8(bytes: &mut &[u8]) -> Result<u8, CorruptTile> {
    take::<1>(bytes).map(|[b]| b)
}

fn take_bytes<'a>(bytes: &mut &'a [u8]) -> Result<&'a [u8], CorruptTile> {
    let len = u32::from_le_bytes(take(bytes)?) as usize;
    if bytes.len() < len {
        return Err(CorruptTile("cut short"));
    }
    let (value, rest) = bytes.split_at(len);
    *bytes = rest;
    Ok(value)
}
