//! Tools for transform authors: building a transform from its folder
//! whatever its language ([`build`]), with the Python guest SDK shipped
//! inside the binary ([`python_sdk`]); a new transform folder to start
//! from ([`scaffold`]); a module run on sample events as the host runs it
//! ([`test_transform`]).

pub mod build;
pub mod python_sdk;
pub mod scaffold;
pub mod test_transform;

pub use build::{BuildError, Built, Language, build};
pub use scaffold::{ScaffoldError, Scaffolded, scaffold};
