//! Many teams' feature views in one host: who the tenants are, what each may
//! use, and the credentials that let each manage its own views only.
//!
//! - [`config`]: `host.yaml` (tenants, repos, limits, where credentials are read from);
//! - [`token`]: credentials kept as digests and compared in constant time.
//!
//! Isolation itself is enforced elsewhere and per tenant: the engine's limits
//! (`transform::limits`), the transform slots (`pipeline::fairness`), the
//! project key space every write goes to, and the admin API's authorization
//! (`server::auth`).

pub mod config;
pub mod token;

pub use config::{AdminConfig, HostConfig, HostConfigError, Tenant};
pub use token::{TokenDigest, TokenSource};
