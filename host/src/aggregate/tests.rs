//! The aggregation core against an independent computation over random
//! events: out of order, on hop boundaries and window edges, replayed.

use std::time::Duration;

use super::*;
use crate::repo::Windowing;
use crate::repo::aggregation::{AggregateFunction, Aggregation};
use crate::types::{FeatureType, ScalarType};

const HOP: i64 = 300_000_000; // 5 minutes, in microseconds
const BASE: i64 = 1_767_225_600_000_000; // 2026-01-01

fn aggregation(function: &str, window_hops: u64) -> Aggregation {
    let parsed = AggregateFunction::parse(function).unwrap();
    let time_window = Duration::from_secs(300 * window_hops);
    Aggregation {
        column: "v".into(),
        function: parsed,
        function_name: function.into(),
        time_window,
        slide_interval: time_window,
        name: Aggregation::default_name(function, "v", time_window),
        output_type: parsed
            .output_type(function, "v", FeatureType::Scalar(ScalarType::Int64))
            .unwrap(),
        max_distinct: crate::repo::aggregation::DEFAULT_MAX_DISTINCT,
    }
}

fn plan() -> WindowPlan {
    let functions = [
        ("count", 12),
        ("sum", 12),
        ("mean", 12),
        ("min", 3),
        ("max", 12),
        ("var", 12),
        ("std", 6),
        ("count_distinct", 12),
        ("last", 12),
    ];
    let windowing = Windowing {
        aggregations: functions.iter().map(|(f, w)| aggregation(f, *w)).collect(),
        hop: Duration::from_secs(300),
        columns: vec![crate::repo::Feature {
            name: "v".into(),
            dtype: FeatureType::Scalar(ScalarType::Int64),
        }],
    };
    WindowPlan::new(&windowing).unwrap()
}

/// A small deterministic generator (xorshift), so a failure reproduces.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[derive(Debug, Clone)]
struct Event {
    micros: i64,
    value: Option<i64>,
    origin: SourceOffset,
}

/// Events of one entity: times spread over 3 hours, a tenth exactly on a hop
/// boundary, some values null, arriving out of order.
fn events(random: &mut Random, count: usize) -> Vec<Event> {
    // Event times are random, so arrival order is not time order; each
    // partition's events arrive in offset order, partitions interleaved.
    let mut partitions: Vec<std::collections::VecDeque<Event>> = vec![Default::default(); 3];
    for offset in 0..count {
        let micros = if random.below(10) == 0 {
            BASE + random.below(36) as i64 * HOP
        } else {
            BASE + random.below(36 * HOP as u64) as i64
        };
        let partition = random.below(3) as usize;
        partitions[partition].push_back(Event {
            micros,
            value: (random.below(8) != 0).then(|| random.below(50) as i64 - 10),
            origin: SourceOffset {
                partition: partition as i32,
                offset: offset as i64,
            },
        });
    }
    let mut events = Vec::with_capacity(count);
    while events.len() < count {
        let partition = random.below(3) as usize;
        if let Some(event) = partitions[partition].pop_front() {
            events.push(event);
        }
    }
    events
}

/// What each function must report, computed directly from the events that
/// the state kept (`Added`), over the window ending with the newest event's hop.
fn expected(plan: &WindowPlan, applied: &[Event]) -> Vec<WindowValue> {
    let newest = applied.iter().map(|e| e.micros).max().unwrap();
    let newest_hop = newest.div_euclid(HOP);
    plan.aggregations()
        .iter()
        .enumerate()
        .map(|(i, aggregation)| {
            let first = (newest_hop - plan.window_hops(i) + 1) * HOP;
            let in_window: Vec<&Event> = applied
                .iter()
                .filter(|e| e.micros >= first && e.micros < (newest_hop + 1) * HOP)
                .collect();
            let values: Vec<i64> = in_window.iter().filter_map(|e| e.value).collect();
            let n = values.len() as f64;
            let mean = values.iter().sum::<i64>() as f64 / n;
            let var = values
                .iter()
                .map(|v| (*v as f64 - mean).powi(2))
                .sum::<f64>()
                / (n - 1.0);
            let int = |v: i64| WindowValue::Value(Scalar::Int(v));
            let float = |v: f64| WindowValue::Value(Scalar::Float(v));
            match aggregation.function {
                AggregateFunction::Count => int(values.len() as i64),
                AggregateFunction::Sum => int(values.iter().sum()),
                AggregateFunction::Mean if n > 0.0 => float(mean),
                AggregateFunction::Var if n > 1.0 => float(var),
                AggregateFunction::Std if n > 1.0 => float(var.sqrt()),
                AggregateFunction::Min if n > 0.0 => int(*values.iter().min().unwrap()),
                AggregateFunction::Max if n > 0.0 => int(*values.iter().max().unwrap()),
                AggregateFunction::CountDistinct => {
                    let mut distinct = values.clone();
                    distinct.sort_unstable();
                    distinct.dedup();
                    int(distinct.len() as i64)
                }
                AggregateFunction::Last => {
                    // The newest event with a value; a tie goes to the one applied later.
                    let newest_with_value = in_window.iter().filter(|e| e.value.is_some()).fold(
                        None::<&&Event>,
                        |best, e| match best {
                            Some(b) if b.micros > e.micros => Some(b),
                            _ => Some(e),
                        },
                    );
                    newest_with_value.map_or(WindowValue::Null, |e| int(e.value.unwrap()))
                }
                _ => WindowValue::Null,
            }
        })
        .collect()
}

fn assert_close(found: &[WindowValue], expected: &[WindowValue], context: &str) {
    for (i, (f, e)) in found.iter().zip(expected).enumerate() {
        match (f, e) {
            (WindowValue::Value(Scalar::Float(f)), WindowValue::Value(Scalar::Float(e))) => {
                assert!(
                    (f - e).abs() <= 1e-9 * e.abs().max(1.0),
                    "{context}: aggregation {i}: {f} != {e}"
                )
            }
            _ => assert_eq!(f, e, "{context}: aggregation {i}"),
        }
    }
}

fn apply_all(plan: &WindowPlan, state: &mut EntityState, events: &[Event]) -> Vec<Event> {
    let mut added = Vec::new();
    for event in events {
        let value = event.value.map(Scalar::Int);
        let values = vec![value; plan.aggregations().len()];
        if state.apply(plan, event.micros, &values, Some(event.origin)) == Applied::Added {
            added.push(event.clone());
        }
    }
    added
}

#[test]
fn every_function_matches_an_independent_computation_over_random_events() {
    let plan = plan();
    let seed = 0x5eed_0001;
    let mut random = Random(seed);
    for entity in 0..200 {
        let count = 1 + random.below(60) as usize;
        let events = events(&mut random, count);
        let mut state = EntityState::for_plan(&plan);
        let added = apply_all(&plan, &mut state, &events);
        let found = state.window_values(&plan).unwrap();
        assert_close(
            &found,
            &expected(&plan, &added),
            &format!("seed {seed:#x}, entity {entity}"),
        );
        // Events older than the longest window behind the newest were dropped, nothing else.
        let newest_hop = state.newest_micros().unwrap().div_euclid(HOP);
        for event in &events {
            let kept = added.iter().any(|a| a.origin == event.origin);
            let old = event.micros.div_euclid(HOP) < newest_hop - 11;
            assert!(
                kept || old,
                "entity {entity}: {event:?} dropped inside the window"
            );
        }
        assert!(state.hops().count() <= 12, "tiles bounded by window / hop");
    }
}

#[test]
fn a_replayed_event_is_not_counted_twice_and_a_half_applied_batch_finishes() {
    let plan = plan();
    let mut random = Random(7);
    let events = events(&mut random, 40);
    let mut once = EntityState::for_plan(&plan);
    apply_all(&plan, &mut once, &events);

    // A crash after the first 25 events were stored; the batch is read
    // again from its start after the restart.
    let mut replayed = EntityState::for_plan(&plan);
    apply_all(&plan, &mut replayed, &events[..25]);
    let stored = EntityState::decode(&replayed.encode(), &plan).unwrap();
    let mut restarted = stored;
    let again = apply_all(&plan, &mut restarted, &events);
    assert!(
        again
            .iter()
            .all(|e| !events[..25].iter().any(|f| f.origin == e.origin))
    );
    assert_eq!(restarted, once);
    assert_eq!(restarted.window_values(&plan), once.window_values(&plan));
}

#[test]
fn window_edges_follow_hops_lower_edge_in_upper_edge_out() {
    let plan = plan();
    let count = |state: &EntityState| match &state.window_values(&plan).unwrap()[0] {
        WindowValue::Value(Scalar::Int(n)) => *n,
        other => panic!("{other:?}"),
    };
    let mut state = EntityState::for_plan(&plan);
    let at = |hops: i64, micros: i64| BASE + hops * HOP + micros;
    let one = vec![Some(Scalar::Int(1)); 9];
    // Newest event at the very start of hop 12: the 1 h window is hops 1..=12.
    state.apply(&plan, at(12, 0), &one, None);
    state.apply(&plan, at(1, 0), &one, None); // first instant of the window: in
    state.apply(&plan, at(1, -1), &one, None); // one microsecond before: out (dropped)
    state.apply(&plan, at(12, HOP - 1), &one, None); // last instant of the newest hop: in
    assert_eq!(count(&state), 3);
    // One more event in hop 13 moves the window to hops 2..=13: hop 1's event leaves.
    state.apply(&plan, at(13, 0), &one, None);
    assert_eq!(count(&state), 3);
}

#[test]
fn states_survive_their_bytes_and_garbage_is_refused_not_a_panic() {
    let plan = plan();
    let mut random = Random(11);
    let mut state = EntityState::for_plan(&plan);
    apply_all(&plan, &mut state, &events(&mut random, 30));
    let bytes = state.encode();
    assert_eq!(EntityState::decode(&bytes, &plan).unwrap(), state);
    for cut in 0..bytes.len() {
        assert!(
            EntityState::decode(&bytes[..cut], &plan).is_err(),
            "cut at {cut}"
        );
    }
    let mut flipped = bytes.clone();
    for i in 0..flipped.len() {
        flipped[i] ^= 0xa5;
        let _ = EntityState::decode(&flipped, &plan);
        flipped[i] ^= 0xa5;
    }
}

#[test]
fn window_values_become_feast_values_of_the_output_types() {
    let plan = plan();
    let mut state = EntityState::for_plan(&plan);
    let values = vec![Some(Scalar::Int(4)); 9];
    state.apply(&plan, BASE, &values, None);
    state.apply(&plan, BASE + 1, &vec![Some(Scalar::Int(8)); 9], None);
    let rows = vec![state.window_values(&plan).unwrap()];
    let encoded = values::encode_rows(&plan, &rows).unwrap();
    // count: Int64 2 (Value field 4, varint); mean: Float64 6.0 (field 5, fixed64).
    assert_eq!(encoded[0][0], vec![0x20, 2]);
    let mut mean = vec![0x29];
    mean.extend_from_slice(&6.0f64.to_le_bytes());
    assert_eq!(encoded[0][2], mean);
    assert_eq!(encoded[0][7], vec![0x20, 2], "two distinct values");
}

#[test]
fn long_distinct_values_are_kept_as_digests_so_a_tile_stays_small() {
    let plan = plan();
    let mut state = EntityState::for_plan(&plan);
    for i in 0..50 {
        let long = Scalar::Bytes(vec![b'x'; 100_000 + i]);
        let mut values = vec![Some(Scalar::Int(1)); 9];
        values[7] = Some(long);
        state.apply(&plan, BASE, &values, None);
    }
    let distinct = &state.window_values(&plan).unwrap()[7];
    assert_eq!(distinct, &WindowValue::Value(Scalar::Int(50)));
    assert!(
        state.encode().len() < 10_000,
        "{} bytes",
        state.encode().len()
    );
}

#[test]
fn count_distinct_is_exact_up_to_its_max_distinct_then_a_lower_bound() {
    let mut capped = aggregation("count_distinct", 12);
    capped.max_distinct = 5;
    let windowing = Windowing {
        aggregations: vec![capped],
        hop: Duration::from_secs(300),
        columns: vec![crate::repo::Feature {
            name: "v".into(),
            dtype: FeatureType::Scalar(ScalarType::Int64),
        }],
    };
    let plan = WindowPlan::new(&windowing).unwrap();
    let count_after = |values: &[i64]| {
        let mut state = EntityState::for_plan(&plan);
        for (i, v) in values.iter().enumerate() {
            // Spread over three hops: the window merges their tiles.
            let micros = BASE + (i as i64 % 3) * HOP;
            state.apply(&plan, micros, &[Some(Scalar::Int(*v))], None);
        }
        let again = EntityState::decode(&state.encode(), &plan).unwrap();
        assert_eq!(again, state, "the cap survives the state's bytes");
        state.window_values(&plan).unwrap()[0].clone()
    };
    assert_eq!(
        count_after(&[1, 2, 3, 1, 2, 3, 4, 5]),
        WindowValue::Value(Scalar::Int(5)),
        "exact at the cap"
    );
    assert_eq!(
        count_after(&[1, 2, 3, 4, 5, 6, 7, 8, 9]),
        WindowValue::Value(Scalar::Int(5)),
        "past it, a lower bound"
    );
    let mut wider = windowing.clone();
    wider.aggregations[0].max_distinct = 6;
    assert_ne!(
        WindowPlan::new(&wider).unwrap().fingerprint(),
        plan.fingerprint(),
        "tiles kept under another cap are not reused"
    );
}

#[test]
fn a_state_kept_for_other_aggregations_or_another_topic_is_not_trusted() {
    let plan = plan();
    let mut random = Random(23);
    let events = events(&mut random, 20);
    let mut state = EntityState::for_plan(&plan);
    apply_all(&plan, &mut state, &events);
    let bytes = state.encode();

    // Another topic: its offsets mean nothing here, so none of its events is a replay.
    let other_topic = plan.clone().for_source("another-topic");
    let mut moved = EntityState::decode(&bytes, &other_topic).unwrap();
    let replays = events
        .iter()
        .filter(|e| {
            let values = vec![e.value.map(Scalar::Int); 9];
            moved.apply(&other_topic, e.micros, &values, Some(e.origin)) == Applied::Replayed
        })
        .count();
    assert_eq!(replays, 0);

    // Other aggregations: the tiles start afresh, the offsets still hold.
    let mut windowing = Windowing {
        aggregations: vec![aggregation("count", 12)],
        hop: Duration::from_secs(300),
        columns: vec![crate::repo::Feature {
            name: "v".into(),
            dtype: FeatureType::Scalar(ScalarType::Int64),
        }],
    };
    let counting = WindowPlan::new(&windowing).unwrap();
    let mut changed = EntityState::decode(&bytes, &counting).unwrap();
    assert_eq!(changed.window_values(&counting), None, "no tiles kept");
    assert!(
        apply_all(&counting, &mut changed, &events).is_empty(),
        "offsets kept"
    );
    windowing.hop = Duration::from_secs(600);
    let longer_hops = WindowPlan::new(&windowing).unwrap();
    assert_eq!(
        EntityState::decode(&bytes, &longer_hops)
            .unwrap()
            .hops()
            .count(),
        0
    );
}

#[test]
fn counts_saturate_and_negative_stored_counts_are_refused() {
    let mut count = Partial::Count(i64::MAX);
    count.add(Some(&Scalar::Int(1)), 0);
    count.merge(&Partial::Count(5));
    assert_eq!(count, Partial::Count(i64::MAX));
    let mut bytes = vec![1];
    bytes.extend_from_slice(&(-3i64).to_le_bytes());
    assert!(Partial::decode(&mut bytes.as_slice(), 1000).is_err());
}

#[test]
fn long_text_for_min_max_or_last_is_refused_naming_the_column() {
    let plan = plan();
    let mut values = vec![Some(Scalar::Int(1)); 9];
    assert_eq!(plan.refuse_values(&values), None);
    values[7] = Some(Scalar::Bytes(vec![b'x'; 5000]));
    assert_eq!(
        plan.refuse_values(&values),
        None,
        "count_distinct keeps a digest of a long value"
    );
    values[8] = Some(Scalar::Bytes(vec![b'x'; 1025]));
    let refused = plan.refuse_values(&values).unwrap();
    assert!(
        refused.contains("column `v`: last keeps its value in each tile; 1025 bytes"),
        "{refused}"
    );
    values[8] = Some(Scalar::Bytes(vec![b'x'; 1024]));
    assert_eq!(plan.refuse_values(&values), None, "1024 bytes are kept");
}
