//! `fvhost new`: scaffolds a transform folder in Rust or Python.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::authoring::{Language, scaffold};

#[derive(Debug, clap::Args)]
pub struct NewArgs {
    /// The transform's name (its folder, module and function): lowercase letters, digits, `_`.
    pub name: String,
    #[arg(long, value_enum, default_value = "python")]
    pub lang: Language,
    /// The folder to create it in.
    #[arg(long, default_value = ".")]
    pub dir: PathBuf,
    /// The Rust guest SDK a Rust transform depends on (default: this checkout's guest-sdk).
    #[arg(long)]
    pub rust_sdk: Option<PathBuf>,
}

pub fn run(args: NewArgs) -> anyhow::Result<ExitCode> {
    let sdk = args.rust_sdk.unwrap_or_else(|| {
        let checkout = Path::new(env!("CARGO_MANIFEST_DIR")).join("../guest-sdk");
        std::fs::canonicalize(&checkout).unwrap_or(checkout)
    });
    let made = scaffold(&args.dir, &args.name, args.lang, &sdk)?;
    println!("created {:?} transform {}:", args.lang, made.dir.display());
    for file in &made.files {
        println!("  {}", file.display());
    }
    println!(
        "build it with `fvhost build {}` (the module: {}); view.yaml is a repo entry using it",
        made.dir.display(),
        made.module.display()
    );
    Ok(ExitCode::SUCCESS)
}
