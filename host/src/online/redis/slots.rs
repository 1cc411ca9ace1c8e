//! Grouping a batch's keys by Redis Cluster hash slot.
//!
//! A cluster runs a command only when all its keys hash to one slot, and
//! Feast's keys carry no hash tags, so a batch's keys spread over the
//! 16384 slots. Each group here becomes its own script call (or pipeline),
//! routed to the slot's master; the groups of one batch go out together,
//! and the cluster client pipelines them per node. On a single server or
//! behind Sentinel the whole batch is one group.

use std::collections::HashMap;

use super::cluster::slot_of;

/// The positions of keys that may go in one request, and their hash slot
/// (0 when the store is not a cluster: the slot is not looked at).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotGroup {
    pub slot: u16,
    pub positions: Vec<usize>,
}

/// The positions of `keys` grouped by slot (one group when not `cluster`),
/// each group in input order, groups in order of their first key.
pub fn group_by_slot<'a>(
    keys: impl ExactSizeIterator<Item = &'a [u8]>,
    cluster: bool,
) -> Vec<SlotGroup> {
    if !cluster {
        return vec![SlotGroup {
            slot: 0,
            positions: (0..keys.len()).collect(),
        }];
    }
    let mut group_of_slot: HashMap<u16, usize> = HashMap::new();
    let mut groups: Vec<SlotGroup> = Vec::new();
    for (position, key) in keys.enumerate() {
        let slot = slot_of(key);
        let group = *group_of_slot.entry(slot).or_insert_with(|| {
            groups.push(SlotGroup {
                slot,
                positions: Vec::new(),
            });
            groups.len() - 1
        });
        groups[group].positions.push(position);
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(texts: &[&str]) -> Vec<Vec<u8>> {
        texts.iter().map(|t| t.as_bytes().to_vec()).collect()
    }

    #[test]
    fn a_single_server_takes_the_batch_as_one_group() {
        let keys = keys(&["a", "b", "c"]);
        let groups = group_by_slot(keys.iter().map(Vec::as_slice), false);
        let positions: Vec<&Vec<usize>> = groups.iter().map(|g| &g.positions).collect();
        assert_eq!(positions, [&vec![0, 1, 2]]);
    }

    #[test]
    fn a_cluster_gets_one_group_per_slot_in_input_order() {
        // `{user1}.a` and `{user1}.b` share a hash tag, hence a slot.
        let keys = keys(&["{user1}.a", "foo", "{user1}.b", "bar", "foo"]);
        let groups = group_by_slot(keys.iter().map(Vec::as_slice), true);
        let positions: Vec<&Vec<usize>> = groups.iter().map(|g| &g.positions).collect();
        assert_eq!(positions, [&vec![0, 2], &vec![1, 4], &vec![3]]);
        assert_eq!(groups[1].slot, slot_of(b"foo"), "each group knows its slot");
    }
}
