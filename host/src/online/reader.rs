//! Reading online features back in Feast's response shape.
//!
//! Values match what Feast's SDK returns; a missing entity is reported as
//! `NOT_FOUND` and a stored null as `NULL_VALUE` (Feast 0.67's server says
//! `PRESENT` for both; [`ResponseStyle::feast_statuses`] answers the same).

use futures::StreamExt;
use serde::{Deserialize, Serialize};

use super::answer::{self, ColumnText, StoredStatuses};
use super::entity_key::{KeyBuilder, KeyValue};
use super::murmur3::{feature_field, timestamp_field};
use super::store::{HashRead, OnlineStore, StoreError};
use super::timestamp::{self, EventTime};
use crate::repo::FeatureView;

/// A `view:feature` reference from a request.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureRef {
    pub view: String,
    pub feature: String,
}

impl FeatureRef {
    /// Parses `view:feature`.
    pub fn parse(text: &str) -> Result<Self, String> {
        match text.split_once(':') {
            Some((view, feature)) if !view.is_empty() && !feature.is_empty() => Ok(Self {
                view: view.to_string(),
                feature: feature.to_string(),
            }),
            _ => Err(format!(
                "`{text}` is not a feature reference (expected view:feature)"
            )),
        }
    }
}

/// Feast's `GetOnlineFeaturesResponse`, column-wise: the typed form of the
/// JSON answer [`get_online_features`] writes, for callers that look into
/// it (the command line, the quickstart).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct OnlineResponse {
    pub metadata: ResponseMetadata,
    pub results: Vec<FeatureColumn>,
}

impl OnlineResponse {
    /// Reads an answer of [`get_online_features`].
    pub fn from_json(json: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(json)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ResponseMetadata {
    pub feature_names: Vec<String>,
}

/// One requested column across all entities.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FeatureColumn {
    pub values: Vec<serde_json::Value>,
    pub statuses: Vec<String>,
    pub event_timestamps: Vec<String>,
}

/// A column answered as it was asked: the values a request gave for a join
/// key of another entity, echoed after the views' join keys as Feast does.
#[derive(Debug, Clone, PartialEq)]
pub struct EchoedColumn {
    pub name: String,
    pub values: Vec<serde_json::Value>,
}

/// How an answer marks and names its values.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ResponseStyle {
    /// Name features `view__feature`.
    pub full_feature_names: bool,
    /// Mark every value `PRESENT`, as Feast 0.67's server does, instead of
    /// `NULL_VALUE` for a stored null and `NOT_FOUND` for a key never written.
    pub feast_statuses: bool,
}

impl ResponseStyle {
    fn status(self, precise: &'static str) -> &'static str {
        match precise {
            "NOT_FOUND" | "NULL_VALUE" if self.feast_statuses => "PRESENT",
            other => other,
        }
    }
}

/// One entity row of a request: join key names and values, in one shared order.
pub struct EntityRow<'a> {
    pub values: Vec<KeyValue<'a>>,
}

/// Reads `features` for `entities` (each with values for `join_keys`) and
/// writes Feast's JSON answer: the join-key columns, then `echoed`, then the
/// features in request order.
///
/// The reads go out in chunks of whole entities, several in flight: while
/// the store answers a later chunk, the answer to an earlier one is written
/// (docs/architecture.md, "Online reads against Feast").
pub async fn get_online_features(
    store: &dyn OnlineStore,
    keys: &KeyBuilder,
    join_keys: &[String],
    views: &[(&FeatureView, Vec<String>)],
    entities: &[EntityRow<'_>],
    echoed: &[EchoedColumn],
    style: ResponseStyle,
) -> Result<Vec<u8>, StoreError> {
    let reads = hash_reads(keys, views, entities);
    let mut answer = AnswerBuilder::new(join_keys, views, entities, echoed, style);
    let chunk = read_chunk(entities.len()) * views.len().max(1);
    let calls: Vec<_> = reads
        .chunks(chunk)
        .map(|reads| read(store, reads))
        .collect();
    let chunked = calls.len() > 1;
    let mut replies = futures::stream::iter(calls).buffered(READS_IN_FLIGHT);
    let mut first = 0;
    while let Some((expected, replies)) = replies.next().await {
        let replies = replies.map_err(|source| match chunked {
            false => source,
            true => StoreError::InChunk {
                first,
                end: first + expected,
                total: reads.len(),
                source: Box::new(source),
            },
        })?;
        first += expected;
        if replies.len() != expected {
            return Err(StoreError::RedisReply {
                expected,
                found: replies.len(),
            });
        }
        answer.add(replies);
    }
    Ok(answer.finish())
}

/// One chunk's reads, with how many replies they must have.
async fn read<'s>(
    store: &'s dyn OnlineStore,
    reads: &'s [HashRead],
) -> (usize, Result<Vec<Vec<Option<Vec<u8>>>>, StoreError>) {
    (reads.len(), store.read(reads).await)
}

/// Read chunks in flight at once.
const READS_IN_FLIGHT: usize = 4;

/// Entities per read chunk for a request of `entities`: a quarter of them,
/// at least 16 (smaller chunks cost more round trips than they overlap).
fn read_chunk(entities: usize) -> usize {
    entities.div_ceil(READS_IN_FLIGHT).max(16)
}

/// Feast's answer, written column by column as the store's replies come,
/// entity by entity.
struct AnswerBuilder<'r> {
    views: &'r [(&'r FeatureView, Vec<String>)],
    names: Vec<String>,
    columns: Vec<ColumnText>,
    first_feature: usize,
    statuses: StoredStatuses,
    not_found: &'static str,
    /// The event time of a key never written, as quoted JSON text.
    epoch: Vec<u8>,
}

impl<'r> AnswerBuilder<'r> {
    /// The join-key and echoed columns filled, the feature columns empty.
    fn new(
        join_keys: &[String],
        views: &'r [(&'r FeatureView, Vec<String>)],
        entities: &[EntityRow<'_>],
        echoed: &[EchoedColumn],
        style: ResponseStyle,
    ) -> Self {
        let rows = entities.len();
        let epoch = quoted(&EventTime::EPOCH.to_rfc3339());
        let mut names: Vec<String> = join_keys.to_vec();
        let mut columns: Vec<ColumnText> = Vec::new();
        for i in 0..join_keys.len() {
            let mut column = ColumnText::with_capacity(rows, 8);
            for entity in entities {
                column.push(|out| write_key(&entity.values[i], out), &epoch);
            }
            columns.push(column);
        }
        for echo in echoed {
            names.push(echo.name.clone());
            let mut column = ColumnText::with_capacity(rows, 8);
            for value in &echo.values {
                column.push(|out| write_echoed(value, out), &epoch);
            }
            columns.push(column);
        }
        let first_feature = columns.len();
        for (view, features) in views {
            for feature in features {
                names.push(if style.full_feature_names {
                    format!("{}__{feature}", view.name)
                } else {
                    feature.clone()
                });
                columns.push(ColumnText::with_capacity(rows, 20));
            }
        }
        Self {
            views,
            names,
            columns,
            first_feature,
            statuses: StoredStatuses {
                present: "PRESENT",
                null: style.status("NULL_VALUE"),
                invalid: "INVALID",
            },
            not_found: style.status("NOT_FOUND"),
            epoch,
        }
    }

    /// Adds the replies of whole entities: for each, one reply per view,
    /// the view's features then its event time.
    fn add(&mut self, replies: Vec<Vec<Option<Vec<u8>>>>) {
        let mut time_text = Vec::with_capacity(32);
        let mut replies = replies.into_iter();
        'entities: loop {
            let mut column = self.first_feature;
            for (_, features) in self.views {
                let Some(fields) = replies.next() else {
                    break 'entities;
                };
                let event_time = fields
                    .get(features.len())
                    .and_then(Option::as_deref)
                    .and_then(|bytes| timestamp::decode(bytes).ok());
                time_text.clear();
                match event_time {
                    Some(time) => answer::push_json_str(&mut time_text, &time.to_rfc3339()),
                    None => time_text.extend_from_slice(&self.epoch),
                }
                for i in 0..features.len() {
                    let out = &mut self.columns[column];
                    match (event_time, fields.get(i).and_then(Option::as_deref)) {
                        (Some(_), Some(stored)) => {
                            out.push_stored(stored, self.statuses, &time_text)
                        }
                        (None, _) | (_, None) => {
                            let not_found = self.not_found;
                            out.push(
                                |out| {
                                    out.extend_from_slice(b"null");
                                    not_found
                                },
                                &time_text,
                            )
                        }
                    }
                    column += 1;
                }
            }
        }
    }

    fn finish(self) -> Vec<u8> {
        answer::finish(&self.names, &self.columns)
    }
}

/// One `HashRead` per (entity, view), entity by entity: the fields of each
/// view are the same for every entity, so they are computed once.
fn hash_reads(
    keys: &KeyBuilder,
    views: &[(&FeatureView, Vec<String>)],
    entities: &[EntityRow<'_>],
) -> Vec<HashRead> {
    let entityless = keys.entityless_key();
    let view_fields: Vec<std::sync::Arc<[Vec<u8>]>> = views
        .iter()
        .map(|(view, features)| {
            let mut fields: Vec<Vec<u8>> = features
                .iter()
                .map(|feature| feature_field(&view.name, feature).to_vec())
                .collect();
            fields.push(timestamp_field(&view.name));
            fields.into()
        })
        .collect();
    let mut reads = Vec::with_capacity(entities.len() * views.len());
    for entity in entities {
        let key = keys.redis_key(&entity.values);
        for ((view, _), fields) in views.iter().zip(&view_fields) {
            // A view without entities has one row, whatever the entity.
            let key = if view.join_keys.is_empty() {
                &entityless
            } else {
                &key
            };
            reads.push(HashRead {
                key: key.clone(),
                fields: std::sync::Arc::clone(fields),
            });
        }
    }
    reads
}

/// `text` as a JSON string.
fn quoted(text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() + 2);
    answer::push_json_str(&mut out, text);
    out
}

/// A join-key value as Feast answers it.
fn write_key(value: &KeyValue<'_>, out: &mut Vec<u8>) -> &'static str {
    match value {
        KeyValue::Bytes(b) => answer::push_json_str(out, &String::from_utf8_lossy(b)),
        KeyValue::String(s) => answer::push_json_str(out, s),
        KeyValue::Int32(v) => out.extend_from_slice(itoa::Buffer::new().format(*v).as_bytes()),
        KeyValue::Int64(v) | KeyValue::UnixTimestamp(v) => {
            out.extend_from_slice(itoa::Buffer::new().format(*v).as_bytes())
        }
    }
    "PRESENT"
}

/// An echoed request value, as it was given.
fn write_echoed(value: &serde_json::Value, out: &mut Vec<u8>) -> &'static str {
    out.extend_from_slice(value.to_string().as_bytes());
    "PRESENT"
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::online::{MemoryStore, OnlineRow, ViewFields};
    use crate::repo::{DeadLetterTarget, Feature, JoinKey};
    use crate::types::{FeatureType, KeyVersion, ScalarType};

    fn view(name: &str, features: &[&str]) -> FeatureView {
        FeatureView {
            name: name.into(),
            stream: false,
            entities: vec!["driver".into()],
            join_keys: vec![JoinKey {
                name: "driver_id".into(),
                value_type: ScalarType::Int64,
            }],
            features: features
                .iter()
                .map(|f| Feature {
                    name: (*f).into(),
                    dtype: FeatureType::Scalar(ScalarType::Int64),
                })
                .collect(),
            ttl: None,
            online: true,
            offline: false,
            source: "src".into(),
            transform: None,
            dead_letter: DeadLetterTarget::Log,
            windowing: None,
            defined_in: "repo.yaml".into(),
        }
    }

    /// Reads `views` for the drivers `ids`, answered in Feast's default style.
    async fn read_drivers(
        store: &dyn OnlineStore,
        keys: &KeyBuilder,
        views: &[(&FeatureView, Vec<String>)],
        ids: &[i64],
    ) -> Result<Vec<u8>, StoreError> {
        let entities: Vec<EntityRow> = ids
            .iter()
            .map(|id| EntityRow {
                values: vec![KeyValue::Int64(*id)],
            })
            .collect();
        let join_keys = ["driver_id".to_string()];
        let style = ResponseStyle::default();
        get_online_features(store, keys, &join_keys, views, &entities, &[], style).await
    }

    /// A stored Int64 `feast.types.Value`.
    fn int64(v: i64) -> Vec<u8> {
        let mut out = vec![0x20];
        crate::online::proto::put_varint(&mut out, v as u64);
        out
    }

    /// Answers for more entities than one read chunk, two views, keys
    /// never written and a stored null come back in request order, with
    /// Feast's statuses and each view's own event time.
    #[tokio::test]
    async fn answers_span_read_chunks_in_request_order() {
        let store = MemoryStore::new();
        let keys = KeyBuilder::new(KeyVersion::V3, &["driver_id".into()], "proj");
        let trips = view("trips", &["count", "best"]);
        let rating = view("rating", &["stars"]);
        let key = |id| keys.redis_key(&[KeyValue::Int64(id)]);
        // even drivers have trips; every third driver a rating, stored null
        let trip_rows: Vec<OnlineRow> = (0..50)
            .step_by(2)
            .map(|id| OnlineRow {
                key: key(id),
                event_time: EventTime::from_micros(id * 1_000_000),
                created: None,
                values: vec![int64(id * 10), int64(-id)],
                batch_row: 0,
            })
            .collect();
        let rating_rows: Vec<OnlineRow> = (0..50)
            .step_by(3)
            .map(|id| OnlineRow {
                key: key(id),
                event_time: EventTime::from_micros(7_000_000),
                created: None,
                values: vec![Vec::new()],
                batch_row: 0,
            })
            .collect();
        store
            .write(&ViewFields::of(&trips), &trip_rows)
            .await
            .unwrap();
        store
            .write(&ViewFields::of(&rating), &rating_rows)
            .await
            .unwrap();

        let ids: Vec<i64> = (0..50).rev().collect();
        let views = [
            (&trips, vec!["best".to_string(), "count".to_string()]),
            (&rating, vec!["stars".to_string()]),
        ];
        assert!(ids.len() > read_chunk(ids.len()));
        let json = read_drivers(&store, &keys, &views, &ids).await.unwrap();
        let answer = OnlineResponse::from_json(&json).unwrap();

        let names = &answer.metadata.feature_names;
        assert_eq!(names, &["driver_id", "best", "count", "stars"]);
        let column = |i: usize| &answer.results[i];
        for (row, id) in ids.iter().enumerate() {
            assert_eq!(column(0).values[row], serde_json::json!(id));
            let (best, count) = (&column(1), &column(2));
            if id % 2 == 0 {
                assert_eq!(best.values[row], serde_json::json!(-id));
                assert_eq!(count.values[row], serde_json::json!(id * 10));
                assert_eq!(count.statuses[row], "PRESENT");
                let time = EventTime::from_micros(id * 1_000_000).to_rfc3339();
                assert_eq!(count.event_timestamps[row], time);
            } else {
                assert_eq!(best.values[row], serde_json::Value::Null);
                assert_eq!(best.statuses[row], "NOT_FOUND");
                assert_eq!(best.event_timestamps[row], "1970-01-01T00:00:00Z");
            }
            let stars = column(3);
            assert_eq!(stars.values[row], serde_json::Value::Null);
            let status = if id % 3 == 0 {
                "NULL_VALUE"
            } else {
                "NOT_FOUND"
            };
            assert_eq!(stars.statuses[row], status, "driver {id}");
        }
    }

    /// A store whose reads fail when they include one key.
    struct FailingOn(Vec<u8>);

    #[async_trait::async_trait]
    impl OnlineStore for FailingOn {
        async fn write(
            &self,
            _: &ViewFields,
            _: &[OnlineRow],
        ) -> Result<crate::online::WriteStats, StoreError> {
            Ok(Default::default())
        }

        async fn read(&self, reads: &[HashRead]) -> Result<Vec<Vec<Option<Vec<u8>>>>, StoreError> {
            match reads.iter().position(|r| r.key == self.0) {
                Some(at) => Err(StoreError::RedisReply {
                    expected: at,
                    found: reads.len(),
                }),
                None => Ok(vec![Vec::new(); reads.len()]),
            }
        }

        async fn compare_and_set(
            &self,
            updates: &[crate::online::GuardedUpdate],
        ) -> Result<Vec<bool>, StoreError> {
            Ok(vec![false; updates.len()])
        }
    }

    /// A failed chunk's error says which of the request's reads it held.
    #[tokio::test]
    async fn a_failed_read_chunk_names_the_reads_it_held() {
        let keys = KeyBuilder::new(KeyVersion::V3, &["driver_id".into()], "proj");
        let trips = view("trips", &["count"]);
        let store = FailingOn(keys.redis_key(&[KeyValue::Int64(20)]));
        let ids: Vec<i64> = (0..40).collect();
        let views = [(&trips, vec!["count".to_string()])];
        let error = read_drivers(&store, &keys, &views, &ids).await.unwrap_err();
        assert_eq!(
            error.to_string(),
            "reads 16..32 of 40 (a reply index below counts from read 16): redis reply has 16 results for 4 keys"
        );
    }
}
