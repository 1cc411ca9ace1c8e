//! Fair sharing of transform calls between views and tenants.
//!
//! Every transform call takes a slot from its tenant (the tenant's
//! `instances_in_flight` limit) and then one from the host (as many as the
//! machine has cores). Both semaphores are first-come first-served, so a view
//! whose topic floods it queues behind the batches other views are already
//! waiting with: it gets its turn, never all the turns.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The semaphores a view's transform calls go through.
#[derive(Debug, Clone)]
pub struct TransformSlots {
    tenant: Arc<Semaphore>,
    host: Arc<Semaphore>,
}

/// Held while one transform call runs.
#[derive(Debug)]
pub struct Slot {
    _tenant: Option<OwnedSemaphorePermit>,
    _host: Option<OwnedSemaphorePermit>,
}

impl TransformSlots {
    /// Slots of a tenant allowed `instances_in_flight` calls at once, within the host's slots.
    pub fn new(instances_in_flight: usize, host: Arc<Semaphore>) -> Self {
        Self {
            tenant: Arc::new(Semaphore::new(instances_in_flight.max(1))),
            host,
        }
    }

    /// One slot per core: transforms are CPU-bound, more at once only queue in the kernel.
    pub fn host_slots() -> Arc<Semaphore> {
        Arc::new(Semaphore::new(crate::transform::limits::cores()))
    }

    /// Waits for a tenant slot, then a host slot.
    pub async fn acquire(&self) -> Slot {
        // The semaphores are never closed, so acquiring cannot fail; if it
        // ever did, the call would run unthrottled rather than not at all.
        let tenant = self.tenant.clone().acquire_owned().await.ok();
        let host = self.host.clone().acquire_owned().await.ok();
        Slot {
            _tenant: tenant,
            _host: host,
        }
    }
}
