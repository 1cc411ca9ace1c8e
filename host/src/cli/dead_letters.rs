//! `fvhost dead-letters`: list a view's dead letters kept in its Redis
//! stream, and replay them to their topics once their cause is fixed.

use std::process::ExitCode;

use anyhow::{Context, bail};

use super::RepoArgs;
use crate::online::connect;
use crate::pipeline::dead_letter::replay;
use crate::pipeline::dead_letter::sink::redis_stream_key;
use crate::repo::{DeadLetterTarget, SourceKind};

#[derive(Debug, clap::Args)]
pub struct DeadLettersArgs {
    #[command(flatten)]
    pub repo: RepoArgs,
    /// The stream feature view whose dead letters to read.
    pub view: String,
    /// Send each one's original key and bytes back to its topic, then delete it.
    #[arg(long)]
    pub replay: bool,
    /// At most this many, oldest first.
    #[arg(long, default_value_t = 1000)]
    pub limit: usize,
    /// Redis URL of the online store, instead of the repo's connection_string.
    #[arg(long, env = "FVHOST_REDIS_URL")]
    pub redis: Option<String>,
    /// Kafka bootstrap servers to replay to, instead of the view's source's.
    #[arg(long, env = "FVHOST_KAFKA_BOOTSTRAP")]
    pub kafka_bootstrap: Option<String>,
}

pub async fn dead_letters(args: DeadLettersArgs) -> anyhow::Result<ExitCode> {
    let repo = args.repo.load()?;
    let view = repo
        .view(&args.view)
        .with_context(|| format!("no view `{}` in the repo", args.view))?;
    match &view.dead_letter {
        DeadLetterTarget::RedisStream => {}
        DeadLetterTarget::KafkaTopic(topic) => bail!(
            "view `{}` sends its dead letters to kafka topic `{topic}`: read or replay them with any Kafka client (the original key and bytes, the reason in fvhost.* headers)",
            view.name
        ),
        DeadLetterTarget::Log => bail!(
            "view `{}` keeps its dead letters in the log only; give it `dead_letter: {{type: redis_stream}}` to keep them replayable",
            view.name
        ),
    }
    let key = redis_stream_key(repo.project(), &view.name);
    let mut connection = connect(&repo.config.online_store, args.redis.as_deref())
        .await
        .context("connecting to the Redis online store")?;
    let letters = replay::read(&mut connection, &key, args.limit.max(1))
        .await
        .with_context(|| format!("reading {key}"))?;
    if !args.replay {
        for letter in &letters {
            println!("{}", serde_json::to_string(letter)?);
        }
        eprintln!("{} dead letter(s) in {key}", letters.len());
        return Ok(ExitCode::SUCCESS);
    }
    let bootstrap = match (
        &args.kafka_bootstrap,
        repo.source(&view.source).map(|s| &s.kind),
    ) {
        (Some(bootstrap), _) => bootstrap.clone(),
        (None, Some(SourceKind::Kafka(kafka))) => kafka.bootstrap_servers.clone(),
        (None, _) => bail!("view `{}` has no kafka source to replay to", view.name),
    };
    let producer: rdkafka::producer::FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("client.id", "fvhost-replay")
        .set("enable.idempotence", "true")
        .create()
        .context("creating the replay producer")?;
    let replayed = replay::replay(&mut connection, &key, &letters, &producer).await?;
    eprintln!("replayed {replayed} dead letter(s) from {key}");
    Ok(ExitCode::SUCCESS)
}
