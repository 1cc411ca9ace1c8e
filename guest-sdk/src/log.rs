//! Logging from a transform, through the host.
//!
//! Lines land in the host's log tagged with the tenant and the view. The host
//! rate-limits them, so log per batch rather than per row. Outside the host
//! (native unit tests) lines go to standard error.

#[cfg(target_arch = "wasm32")]
use crate::bindings::fvhost::transform::host::{self, Level};

/// Logs at debug level.
pub fn debug(message: &str) {
    emit(0, message)
}

/// Logs at info level.
pub fn info(message: &str) {
    emit(1, message)
}

/// Logs at warn level.
pub fn warn(message: &str) {
    emit(2, message)
}

/// Logs at error level.
pub fn error(message: &str) {
    emit(3, message)
}

#[cfg(target_arch = "wasm32")]
fn emit(level: u8, message: &str) {
    let level = match level {
        0 => Level::Debug,
        1 => Level::Info,
        2 => Level::Warn,
        _ => Level::Error,
    };
    host::log(level, message);
}

#[cfg(not(target_arch = "wasm32"))]
fn emit(level: u8, message: &str) {
    const NAMES: [&str; 4] = ["debug", "info", "warn", "error"];
    eprintln!("[guest {}] {message}", NAMES[usize::from(level.min(3))]);
}
