//! Host-side bindings generated from the guest SDK's WIT package.

wasmtime::component::bindgen!({
    world: "feature-transform",
    path: "../guest-sdk/wit",
});

pub use self::fvhost::transform::host::Level;
