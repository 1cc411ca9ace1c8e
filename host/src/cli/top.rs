//! `fvhost top`: a running host at a glance, refreshed every second, from
//! the admin API's `/status` (the `vector top` habit).

use std::collections::HashMap;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use super::admin::{AdminArgs, request};

#[derive(Debug, clap::Args)]
pub struct TopArgs {
    #[command(flatten)]
    pub admin: AdminArgs,
    /// Print one frame and exit (rates need two samples: taken a second apart).
    #[arg(long)]
    pub once: bool,
}

/// One view's counters as `/status` gives them.
#[derive(Debug, Clone, serde::Deserialize)]
struct ViewRow {
    tenant: String,
    view: String,
    version: String,
    tier: Option<String>,
    state: String,
    messages: u64,
    rows_out: u64,
    keys_written: u64,
    dead_letters: u64,
    consumer_lag: u64,
    /// Empty until the lag was first measured (no partitions yet).
    #[serde(default)]
    partition_lag: std::collections::BTreeMap<String, i64>,
    freshness_seconds: Option<f64>,
}

const REFRESH: Duration = Duration::from_secs(1);

pub async fn top(args: TopArgs) -> anyhow::Result<ExitCode> {
    let mut before: Option<(Instant, Vec<ViewRow>)> = None;
    loop {
        let rows = sample(&args.admin).await?;
        let now = Instant::now();
        if let Some((then, previous)) = &before {
            let frame = render(&rows, previous, now.duration_since(*then));
            if args.once {
                print!("{frame}");
                return Ok(ExitCode::SUCCESS);
            }
            // Clear the screen and draw from the top-left corner.
            print!("\x1b[2J\x1b[H{frame}");
            use std::io::Write;
            let _ = std::io::stdout().flush();
        }
        before = Some((now, rows));
        tokio::time::sleep(REFRESH).await;
    }
}

async fn sample(admin: &AdminArgs) -> anyhow::Result<Vec<ViewRow>> {
    let path = match &admin.tenant {
        Some(_) => format!("{}/status", admin.tenant_prefix()),
        None => "/status".to_string(),
    };
    let (status, body) = request(admin, "GET", &path, &[]).await?;
    if status != 200 {
        anyhow::bail!("the host answered {status}: {body}");
    }
    serde_json::from_str(&body).map_err(|e| anyhow::anyhow!("an unexpected /status answer: {e}"))
}

/// The table of `rows`, with rates from the counters' change since `previous`.
fn render(rows: &[ViewRow], previous: &[ViewRow], elapsed: Duration) -> String {
    let seconds = elapsed.as_secs_f64().max(0.001);
    let before: HashMap<(&str, &str), &ViewRow> = previous
        .iter()
        .map(|r| ((r.tenant.as_str(), r.view.as_str()), r))
        .collect();
    let rate = |now: u64, then: Option<u64>| match then {
        Some(then) => format!("{:.0}", now.saturating_sub(then) as f64 / seconds),
        None => "-".into(),
    };
    let mut out = format!(
        "{:<12} {:<28} {:<14} {:<8} {:>9} {:>9} {:>9} {:>9} {:>9} {:>7} {:<9}\n",
        "TENANT",
        "VIEW",
        "VERSION",
        "STATE",
        "MSG/S",
        "ROWS/S",
        "KEYS/S",
        "LAG",
        "FRESH",
        "DEAD",
        "TIER"
    );
    for row in rows {
        let then = before.get(&(row.tenant.as_str(), row.view.as_str()));
        let fresh = row
            .freshness_seconds
            .map_or_else(|| "-".into(), |s| format!("{s:.1}s"));
        out.push_str(&format!(
            "{:<12} {:<28} {:<14} {:<8} {:>9} {:>9} {:>9} {:>9} {:>9} {:>7} {:<9}\n",
            row.tenant,
            row.view,
            row.version.chars().take(12).collect::<String>(),
            row.state,
            rate(row.messages, then.map(|t| t.messages)),
            rate(row.rows_out, then.map(|t| t.rows_out)),
            rate(row.keys_written, then.map(|t| t.keys_written)),
            match row.partition_lag.is_empty() {
                true => "-".to_string(),
                false => row.consumer_lag.to_string(),
            },
            fresh,
            row.dead_letters,
            row.tier.as_deref().unwrap_or("-"),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(messages: u64) -> ViewRow {
        ViewRow {
            tenant: "ranking".into(),
            view: "driver_stats".into(),
            version: "0123456789abcdef".into(),
            tier: Some("optimized".into()),
            state: "running".into(),
            messages,
            rows_out: messages / 2,
            keys_written: messages / 4,
            dead_letters: 3,
            consumer_lag: 17,
            partition_lag: [("0".to_string(), 17)].into(),
            freshness_seconds: Some(1.25),
        }
    }

    #[test]
    fn rates_come_from_the_change_between_two_samples() {
        let frame = render(&[row(3000)], &[row(1000)], Duration::from_secs(2));
        let line = frame.lines().nth(1).unwrap();
        let cells: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(
            cells,
            [
                "ranking",
                "driver_stats",
                "0123456789ab",
                "running",
                "1000",
                "500",
                "250",
                "17",
                "1.2s",
                "3",
                "optimized"
            ]
        );
    }
}
