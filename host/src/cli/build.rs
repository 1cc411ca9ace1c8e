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
    /// Also compile the module's optimized code into the module cache, so
    /// hosts on this machine run it optimized from their first batch
    /// (about 17 s for a Python module).
    #[arg(long)]
    pub precompile: bool,
}

pub fn run(args: BuildArgs) -> anyhow::Result<ExitCode> {
    let built = build(&args.dir, args.lang, args.output.as_deref())?;
    println!(
        "built {:?} transform {} in {:.1} s",
        built.language,
        built.module.display(),
        built.seconds
    );
    if args.precompile {
        precompile(&built.module)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Loads `module` as a host would and waits for its optimized code, which
/// the module cache keeps on disk.
fn precompile(module: &std::path::Path) -> anyhow::Result<()> {
    use crate::transform::cache::{ModuleCache, default_dir};
    use crate::transform::{Limits, TransformEngine, TransformModule};
    let started = std::time::Instant::now();
    let engine = TransformEngine::new()?;
    let cache = ModuleCache::new(default_dir());
    let loaded = TransformModule::load(&engine, &cache, module, &Limits::default())?;
    if !loaded.wait_until_optimized(std::time::Duration::from_secs(600)) {
        anyhow::bail!(
            "{}: the optimized compile did not finish within 10 minutes",
            module.display()
        );
    }
    println!(
        "optimized code cached in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
