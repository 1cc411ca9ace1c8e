//! Exports the transformer interface of the host's contract version with a
//! `transform` of the wrong type: the host must refuse it at load, saying
//! what differs.

wit_bindgen::generate!({ path: "wit", world: "feature-transform" });

struct WrongSignature;

impl exports::fvhost::transform::transformer::Guest for WrongSignature {
    fn init(_config: Vec<(String, String)>) -> Result<(), String> {
        Ok(())
    }

    fn transform(_batch: String) -> Result<fvhost::transform::types::Output, String> {
        Err("never called: the host refuses this signature".into())
    }
}

export!(WrongSignature);
