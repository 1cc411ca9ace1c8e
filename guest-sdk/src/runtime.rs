//! The glue [`crate::export_transform!`] calls; not part of the authoring API.

use std::cell::RefCell;

use crate::bindings::fvhost::transform::types::{Output, RejectedRow};
use crate::{Config, Rejections, Transform, ipc};

/// Builds the transform from its config and keeps it in `slot`.
pub fn init<T: Transform>(
    slot: &RefCell<Option<T>>,
    config: Vec<(String, String)>,
) -> Result<(), String> {
    install_panic_hook();
    let transform = T::init(&Config::new(config))?;
    *slot.borrow_mut() = Some(transform);
    Ok(())
}

/// Decodes the IPC input, runs the transform and encodes its output.
pub fn transform<T: Transform>(
    slot: &RefCell<Option<T>>,
    batch: Vec<u8>,
) -> Result<Output, String> {
    let mut slot = slot.borrow_mut();
    let transform = slot
        .as_mut()
        .ok_or_else(|| "transform called before init".to_string())?;
    let (output, rejected) = run(transform, &batch)?;
    Ok(Output {
        batch: output,
        rejected: rejected
            .into_iter()
            .map(|(row, reason)| RejectedRow { row, reason })
            .collect(),
    })
}

/// Rejected input rows with their reasons.
pub(crate) type RejectedRows = Vec<(u32, String)>;

/// One call, independent of the bindings, so native tests share it.
pub(crate) fn run<T: Transform>(
    transform: &mut T,
    input: &[u8],
) -> Result<(Vec<u8>, RejectedRows), String> {
    let input = ipc::decode(input)?;
    let mut rejected = Rejections::default();
    let output = transform.transform(input, &mut rejected)?;
    Ok((ipc::encode(&output)?, rejected.into_rows()))
}

/// Sends panic messages to the host's log before the instance traps, so the
/// host can say why a batch failed.
fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        crate::log::error(&format!("panic: {info}"));
    }));
}
