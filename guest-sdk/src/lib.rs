//! Write fvhost feature-view transforms in Rust.
//!
//! A transform is one type implementing [`Transform`]: it is built once per
//! instance from the view's `transform.config`, then turns each input Arrow
//! [`RecordBatch`] into an output batch whose columns match the view's
//! declared schema (plus its entity join keys and timestamp columns).
//!
//! ```ignore
//! use fvhost_guest::{Config, RecordBatch, Rejections, Transform};
//!
//! struct Identity;
//!
//! impl Transform for Identity {
//!     fn init(_config: &Config) -> Result<Self, String> {
//!         Ok(Identity)
//!     }
//!     fn transform(&mut self, input: RecordBatch, _rejected: &mut Rejections) -> Result<RecordBatch, String> {
//!         Ok(input)
//!     }
//! }
//!
//! fvhost_guest::export_transform!(Identity);
//! ```
//!
//! Build with `cargo build --target wasm32-wasip2 --release`; the `.wasm` in
//! `target/wasm32-wasip2/release/` is what a feature view's `transform.module`
//! points at. The contract itself is the WIT package `fvhost:transform@0.1.0`
//! in this crate's `wit/` folder, so other languages can target it too.

mod config;
mod ipc;
pub mod log;
mod rejections;
#[doc(hidden)]
pub mod runtime;
pub mod testing;

pub use arrow_array;
pub use arrow_array::RecordBatch;
pub use arrow_schema;
pub use arrow_select;
pub use config::Config;
pub use rejections::Rejections;

/// The version of the WIT contract this SDK implements.
pub const CONTRACT_VERSION: &str = "fvhost:transform@0.1.0";

/// Bindings generated from `wit/`; used by [`export_transform!`], not by authors.
#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "wit",
        world: "feature-transform",
        pub_export_macro: true,
        export_macro_name: "__export_feature_transform",
        default_bindings_module: "fvhost_guest::bindings",
    });
}

/// A feature-view transform.
///
/// The host creates a fresh instance per batch, so state kept in `self` lives
/// for one call of [`Transform::transform`] only; configuration is the way to
/// parameterize a transform.
pub trait Transform: Sized + 'static {
    /// Builds the transform from the view's `transform.config`.
    /// An error here fails the module load, with the message shown to the user.
    fn init(config: &Config) -> Result<Self, String>;

    /// Turns one input batch into one output batch. Rows that cannot be
    /// transformed are left out of the output and reported in `rejected`;
    /// returning an error fails the whole batch.
    fn transform(
        &mut self,
        input: RecordBatch,
        rejected: &mut Rejections,
    ) -> Result<RecordBatch, String>;
}

/// The rows of `batch` whose entry in `keep` is true: the usual companion of
/// [`Rejections::reject`], which leaves the rejected rows out of the output.
pub fn keep_rows(batch: &RecordBatch, keep: &[bool]) -> Result<RecordBatch, String> {
    if keep.len() != batch.num_rows() {
        return Err(format!(
            "keep_rows: {} flags for {} rows",
            keep.len(),
            batch.num_rows()
        ));
    }
    let mask = arrow_array::BooleanArray::from(keep.to_vec());
    arrow_select::filter::filter_record_batch(batch, &mask).map_err(|e| e.to_string())
}

/// Exports a [`Transform`] implementation as the module's entry points.
///
/// Use it once per crate, at the top level.
#[macro_export]
macro_rules! export_transform {
    ($ty:ty) => {
        // Exported only when building the component: a native build (unit
        // tests with `testing::run`) has no host to export to.
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            ::std::thread_local! {
                static STATE: ::std::cell::RefCell<::std::option::Option<$ty>> =
                    const { ::std::cell::RefCell::new(::std::option::Option::None) };
            }

            struct FvhostExport;

            impl $crate::bindings::exports::fvhost::transform::transformer::Guest for FvhostExport {
                fn init(
                    config: ::std::vec::Vec<(::std::string::String, ::std::string::String)>,
                ) -> ::std::result::Result<(), ::std::string::String> {
                    STATE.with(|slot| $crate::runtime::init::<$ty>(slot, config))
                }

                fn transform(
                    batch: ::std::vec::Vec<u8>,
                ) -> ::std::result::Result<
                    $crate::bindings::fvhost::transform::types::Output,
                    ::std::string::String,
                > {
                    STATE.with(|slot| $crate::runtime::transform::<$ty>(slot, batch))
                }
            }

            $crate::bindings::__export_feature_transform!(FvhostExport with_types_in $crate::bindings);
        };
    };
}
