//! Implements the transform world of a contract version the host does not
//! support (`fvhost:transform@0.2.0`): the host must refuse to load it.

wit_bindgen::generate!({ path: "wit", world: "feature-transform" });

struct WrongContract;

impl exports::fvhost::transform::transformer::Guest for WrongContract {
    fn init(_config: Vec<(String, String)>) -> Result<(), String> {
        Ok(())
    }

    fn transform(_batch: Vec<u8>) -> Result<fvhost::transform::types::Output, String> {
        Err("never called: the host does not accept this contract".into())
    }
}

export!(WrongContract);
