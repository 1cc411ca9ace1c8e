//! The hash fields one feature view owns in an entity's hash, as Feast names
//! them: `_ts:<view>` for the event time and murmur3 of `<view>:<feature>`
//! for each feature.

use super::murmur3::{feature_field, timestamp_field};
use crate::repo::FeatureView;

/// The hash fields one view writes, in the view's feature order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewFields {
    pub timestamp: Vec<u8>,
    pub features: Vec<[u8; 4]>,
}

impl ViewFields {
    pub fn of(view: &FeatureView) -> Self {
        Self {
            timestamp: timestamp_field(&view.name),
            features: view
                .features
                .iter()
                .map(|f| feature_field(&view.name, &f.name))
                .collect(),
        }
    }
}
