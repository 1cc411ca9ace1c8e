//! `fvhost build`: builds a transform from its folder, Rust or Python.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::authoring::{Language, build};

#[derive(Debug, clap::Args)]
pub struct BuildArgs {
    /// The transform's folder: a Rust crate (Cargo.toml) or a Python transform (transform.py).
    #[arg(default_value = ".")]
    pub dir: PathBuf,
    /// The language, when the folder does not say.
    #[arg(long, value_enum)]
    pub lang: Option<Language>,
    /// Where to put the module (default: cargo's target folder; DIR/build/<name>.wasm for Python).
    #[arg(short, long)]
    pub output: Option<PathBuf>,
}

pub fn run(args: BuildArgs) -> anyhow::Result<ExitCode> {
    let built = build(&args.dir, args.lang, args.output.as_deref())?;
    println!(
        "built {:?} transform {} in {:.1} s",
        built.language,
        built.module.display(),
        built.seconds
    );
    Ok(ExitCode::SUCCESS)
}
