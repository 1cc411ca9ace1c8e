//! Imports `secrets.read-secret`, which fvhost does not provide: the host
//! must refuse the module before it runs.

wit_bindgen::generate!({ path: "wit", world: "feature-transform" });

struct UnknownImport;

impl exports::fvhost::transform::transformer::Guest for UnknownImport {
    fn init(_config: Vec<(String, String)>) -> Result<(), String> {
        Ok(())
    }

    fn transform(_batch: Vec<u8>) -> Result<fvhost::transform::types::Output, String> {
        Err(fvhost::transform::secrets::read_secret("redis-password"))
    }
}

export!(UnknownImport);
