//! `fvhost dead-letters`: list a view's dead letters (its Redis stream or its
//! Kafka dead-letter topic), and replay them to their topics once their
//! cause is fixed.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};

use super::RepoArgs;
use crate::online::connect;
use crate::pipeline::dead_letter::replay;
use crate::pipeline::dead_letter::sink::redis_stream_key;
use crate::repo::{DeadLetterTarget, FeatureRepo, FeatureView, SourceKind};

/// How long a Kafka dead-letter topic may stay silent before reading stops.
const KAFKA_IDLE: Duration = Duration::from_secs(5);

#[derive(Debug, clap::Args)]
pub struct DeadLettersArgs {
    #[command(flatten)]
    pub repo: RepoArgs,
    /// The stream feature view whose dead letters to read.
    pub view: String,
    /// Send each one's original key and bytes back to its topic, then delete
    /// it (Redis) or record it as replayed (Kafka).
    #[arg(long)]
    pub replay: bool,
    /// At most this many, oldest first.
    #[arg(long, default_value_t = 1000)]
    pub limit: usize,
    /// Redis URL of the online store, instead of the repo's connection_string.
    #[arg(long, env = "FVHOST_REDIS_URL")]
    pub redis: Option<String>,
    /// Kafka bootstrap servers, instead of the view's source's.
    #[arg(long, env = "FVHOST_KAFKA_BOOTSTRAP")]
    pub kafka_bootstrap: Option<String>,
}

pub async fn dead_letters(args: DeadLettersArgs) -> anyhow::Result<ExitCode> {
    let repo = args.repo.load()?;
    let view = repo
        .view(&args.view)
        .with_context(|| format!("no view `{}` in the repo", args.view))?;
    match &view.dead_letter {
        DeadLetterTarget::RedisStream => redis_dead_letters(&args, &repo, view).await,
        DeadLetterTarget::KafkaTopic(topic) => kafka_dead_letters(&args, &repo, view, topic).await,
        DeadLetterTarget::Log => bail!(
            "view `{}` keeps its dead letters in the log only; give it `dead_letter: {{type: redis_stream}}` or a kafka topic to keep them replayable",
            view.name
        ),
    }
}

/// The bootstrap servers to read from and replay to.
fn bootstrap(
    args: &DeadLettersArgs,
    repo: &FeatureRepo,
    view: &FeatureView,
) -> anyhow::Result<String> {
    match (
        &args.kafka_bootstrap,
        repo.source(&view.source).map(|s| &s.kind),
    ) {
        (Some(bootstrap), _) => Ok(bootstrap.clone()),
        (None, Some(SourceKind::Kafka(kafka))) => Ok(kafka.bootstrap_servers.clone()),
        (None, _) => bail!("view `{}` has no kafka source", view.name),
    }
}

fn producer(bootstrap: &str) -> anyhow::Result<rdkafka::producer::FutureProducer> {
    rdkafka::ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("client.id", "fvhost-replay")
        .set("enable.idempotence", "true")
        .create()
        .context("creating the replay producer")
}

fn print<T: serde::Serialize>(letters: &[T]) -> anyhow::Result<()> {
    for letter in letters {
        println!("{}", serde_json::to_string(letter)?);
    }
    Ok(())
}

async fn redis_dead_letters(
    args: &DeadLettersArgs,
    repo: &FeatureRepo,
    view: &FeatureView,
) -> anyhow::Result<ExitCode> {
    let key = redis_stream_key(repo.project(), &view.name);
    let mut connection = connect(&repo.config.online_store, args.redis.as_deref())
        .await
        .context("connecting to the Redis online store")?;
    let letters = replay::read(&mut connection, &key, args.limit.max(1))
        .await
        .with_context(|| format!("reading {key}"))?;
    let total: u64 = redis::cmd("XLEN")
        .arg(&key)
        .query_async(&mut connection)
        .await
        .with_context(|| format!("counting {key}"))?;
    if !args.replay {
        print(&letters)?;
        eprintln!("{}", listed(letters.len(), total, &key, args.limit.max(1)));
        return Ok(ExitCode::SUCCESS);
    }
    let producer = producer(&bootstrap(args, repo, view)?)?;
    let replayed = replay::replay(&mut connection, &key, &letters, &producer).await?;
    let left = total.saturating_sub(replayed as u64);
    match left {
        0 => eprintln!("replayed {replayed} dead letter(s) from {key}"),
        _ => eprintln!(
            "replayed {replayed} dead letter(s) from {key}; {left} remain (--limit {}: run again, or raise it)",
            args.limit.max(1)
        ),
    }
    Ok(ExitCode::SUCCESS)
}

/// Lists (committing nothing) or replays a Kafka dead-letter topic. Replays
/// go through the group `fvhost.<project>.<view>.dead_letter_replay`, so a
/// second replay starts after the first.
async fn kafka_dead_letters(
    args: &DeadLettersArgs,
    repo: &FeatureRepo,
    view: &FeatureView,
    topic: &str,
) -> anyhow::Result<ExitCode> {
    let bootstrap = bootstrap(args, repo, view)?;
    let limit = args.limit.max(1);
    let base = format!("fvhost.{}.{}", repo.project(), view.name);
    if !args.replay {
        let browse = format!("{base}.dead_letter_browse.{}", std::process::id());
        let letters =
            replay::read_kafka(&bootstrap, topic, &browse, limit, KAFKA_IDLE, None).await?;
        print(&letters)?;
        let more = match letters.len() >= limit {
            true => format!(" (the --limit {limit}: there may be more)"),
            false => String::new(),
        };
        eprintln!(
            "{} dead letter(s) in kafka topic {topic}{more}",
            letters.len()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let group = format!("{base}.dead_letter_replay");
    let producer = producer(&bootstrap)?;
    let letters = replay::read_kafka(
        &bootstrap,
        topic,
        &group,
        limit,
        KAFKA_IDLE,
        Some(&producer),
    )
    .await?;
    eprintln!(
        "replayed {} dead letter(s) from kafka topic {topic} (group {group})",
        letters.len()
    );
    Ok(ExitCode::SUCCESS)
}

/// What a listing of a Redis dead-letter stream says: how many were shown,
/// and how many the stream holds when `--limit` cut the list.
fn listed(shown: usize, total: u64, key: &str, limit: usize) -> String {
    match total > shown as u64 {
        true => format!(
            "{shown} of {total} dead letter(s) in {key}, oldest first (--limit {limit}; raise it to see more)"
        ),
        false => format!("{shown} dead letter(s) in {key}"),
    }
}

#[cfg(test)]
mod tests {
    use super::listed;

    #[test]
    fn a_listing_cut_by_the_limit_says_how_many_the_stream_holds() {
        assert_eq!(
            listed(1000, 6053, "dl", 1000),
            "1000 of 6053 dead letter(s) in dl, oldest first (--limit 1000; raise it to see more)"
        );
        assert_eq!(listed(12, 12, "dl", 1000), "12 dead letter(s) in dl");
    }
}
