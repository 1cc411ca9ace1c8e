//! Host-side bindings generated from the guest SDK's WIT package.

wasmtime::component::bindgen!({
    world: "feature-transform",
    path: "../guest-sdk/wit",
    // Exports are called asynchronously so that a call blocked in any host
    // function can be abandoned at its deadline (see `runner`).
    exports: { default: async },
});

pub use self::fvhost::transform::host::Level;
