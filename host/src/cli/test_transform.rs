//! `fvhost test-transform`: runs a module on sample events as the host
//! would for a view, and prints its output, rejections and times.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::authoring::test_transform::{table, test_transform};
use crate::pipeline::dead_letter::DeadLetterKind;

#[derive(Debug, clap::Args)]
pub struct TestTransformArgs {
    /// The transform module (.wasm), e.g. what `fvhost build` printed.
    pub module: PathBuf,
    #[command(flatten)]
    pub repo: super::RepoArgs,
    /// The view whose config, schema and source the module runs with.
    #[arg(long)]
    pub view: String,
    /// Sample events: JSON lines (decoded as the view's Kafka source does), CSV or Parquet.
    #[arg(long)]
    pub events: PathBuf,
    /// Events per batch.
    #[arg(long, default_value_t = 8192)]
    pub batch: usize,
    /// Output rows shown per batch.
    #[arg(long, default_value_t = 20)]
    pub rows: usize,
}

pub async fn run(args: TestTransformArgs) -> anyhow::Result<ExitCode> {
    let repo = args.repo.load()?;
    let run = test_transform(&repo, &args.view, &args.module, &args.events, args.batch).await?;
    for (line, reason) in &run.undecodable {
        println!("line {line}: not decoded: {reason}");
    }
    let mut failed = 0;
    for (i, batch) in run.batches.iter().enumerate() {
        let output_rows: usize = batch.output.iter().map(|b| b.num_rows()).sum();
        println!(
            "batch {i}: {} events in, {output_rows} rows out, {} refused, {:.1} ms{}",
            batch.input_rows,
            batch.refused.len(),
            batch.micros as f64 / 1000.0,
            if batch.failed_attempts > 0 {
                format!(" ({} failed attempts)", batch.failed_attempts)
            } else {
                String::new()
            }
        );
        if args.rows > 0 {
            for output in &batch.output {
                print!("{}", table(output, args.rows));
            }
        }
        for refused in &batch.refused {
            println!(
                "  row {}: {}: {}",
                refused.row,
                refused.kind.as_str(),
                refused.reason
            );
            failed += usize::from(refused.kind != DeadLetterKind::Rejected);
        }
    }
    Ok(if failed > 0 || !run.undecodable.is_empty() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
