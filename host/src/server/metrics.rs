//! `GET /metrics`: the host's metrics in Prometheus's text format (on the
//! admin API), and `serve`'s request metrics ([`RequestMetrics`]).
//!
//! Nothing is kept twice: at each scrape the encoder walks the running
//! views' live counters ([`ViewMetrics`], the ones `fvhost status` reads)
//! and encodes them with prometheus-client. Labels are bounded: tenant,
//! view, version, stage, partition, dead-letter kind; never an entity key
//! or an offset.

use std::fmt;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::control::registry::LiveView;
use crate::pipeline::metrics::{Counter as ViewCounter, Stage, ViewMetrics};

/// The routes of `serve`, as a bounded label (anything else is `other`).
const ROUTES: [&str; 6] = [
    "/push",
    "/write-to-online-store",
    "/get-online-features",
    "/health",
    "/ready",
    "/metrics",
];

/// The label for a request to `path`: its route, or `other`.
pub fn route_label(path: &str) -> &'static str {
    ROUTES
        .iter()
        .find(|r| **r == path)
        .copied()
        .unwrap_or("other")
}

/// `serve`'s own metrics: requests by route and status code, and their latency.
#[derive(Debug)]
pub struct RequestMetrics {
    registry: Registry,
    requests: Family<Vec<(&'static str, String)>, Counter>,
    seconds: Family<Vec<(&'static str, String)>, Histogram>,
    /// What `serve --read-cache-mb`'s caches did (zero without one).
    pub read_cache: std::sync::Arc<crate::online::cache::CacheCounters>,
}

impl Default for RequestMetrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let requests = Family::<Vec<(&'static str, String)>, Counter>::default();
        let seconds =
            Family::<Vec<(&'static str, String)>, Histogram>::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.0001, 2.0, 18))
            });
        registry.register(
            "fvhost_http_requests",
            "Requests answered, by route and status code.",
            requests.clone(),
        );
        registry.register(
            "fvhost_http_request_seconds",
            "How long requests took to answer, by route.",
            seconds.clone(),
        );
        registry.register_collector(Box::new(BuildInfo));
        let read_cache = std::sync::Arc::<crate::online::cache::CacheCounters>::default();
        read_cache.register(&mut registry);
        Self {
            registry,
            requests,
            seconds,
            read_cache,
        }
    }
}

impl RequestMetrics {
    pub fn observe(&self, route: &'static str, status: u16, elapsed: std::time::Duration) {
        let labels = vec![("route", route.to_string()), ("code", status.to_string())];
        self.requests.get_or_create(&labels).inc();
        let labels = vec![("route", route.to_string())];
        self.seconds
            .get_or_create(&labels)
            .observe(elapsed.as_secs_f64());
    }

    pub fn render(&self) -> Result<String, fmt::Error> {
        let mut text = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut text, &self.registry)?;
        Ok(text)
    }
}

/// `fvhost_build_info{version}`.
#[derive(Debug)]
struct BuildInfo;

impl Collector for BuildInfo {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        encode_build_info(&mut encoder)
    }
}

fn encode_build_info(encoder: &mut DescriptorEncoder) -> fmt::Result {
    let mut build = encoder.encode_descriptor(
        "fvhost_build",
        "The running fvhost's version.",
        None,
        MetricType::Info,
    )?;
    build.encode_info(&[("version", env!("CARGO_PKG_VERSION"))])
}

/// The media type of the answer (Prometheus's text format 0.0.4).
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The Prometheus text of `views`' metrics at `now_micros`.
pub fn render(views: Vec<LiveView>, now_micros: i64) -> Result<String, fmt::Error> {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(HostCollector { views, now_micros }));
    let mut text = String::new();
    prometheus_client::encoding::prometheus_text::encode(&mut text, &registry)?;
    Ok(text)
}

struct HostCollector {
    views: Vec<LiveView>,
    now_micros: i64,
}

impl fmt::Debug for HostCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HostCollector")
            .field("views", &self.views.len())
            .finish()
    }
}

/// One counter, `<prefix>_<name>`, with a sample per labelled series (each
/// series' counters as [`ViewMetrics::counters`] lists them); a `*_micros`
/// counter is exported in seconds, as `<prefix>_<stage>_seconds`.
fn encode_counter(
    encoder: &mut DescriptorEncoder,
    prefix: &str,
    name: &str,
    help: &str,
    series: &[(Labels, Vec<ViewCounter>)],
) -> fmt::Result {
    let seconds = name.strip_suffix("_micros");
    let metric_name = match seconds {
        Some(stage) => format!("{prefix}_{stage}_seconds"),
        None => format!("{prefix}_{name}"),
    };
    let mut metric = encoder.encode_descriptor(&metric_name, help, None, MetricType::Counter)?;
    for (labels, counters) in series {
        let value = counters
            .iter()
            .find(|c| c.name == name)
            .map_or(0, |c| c.value);
        let family = metric.encode_family(labels)?;
        match seconds {
            Some(_) => ConstCounter::new(value as f64 / 1e6).encode(family)?,
            None => ConstCounter::new(value).encode(family)?,
        }
    }
    Ok(())
}

/// A sample's labels: name and value.
type Labels = Vec<(&'static str, String)>;

/// The labels naming a view.
fn view_labels(view: &LiveView) -> Labels {
    vec![("tenant", view.tenant.clone()), ("view", view.view.clone())]
}

impl Collector for HostCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        encode_build_info(&mut encoder)?;
        self.counters(&mut encoder)?;
        self.version_counters(&mut encoder)?;
        self.gauges(&mut encoder)?;
        self.stage_histograms(&mut encoder)
    }
}

impl HostCollector {
    /// Every counter status shows, per view; `*_micros` as `*_seconds`.
    fn counters(&self, encoder: &mut DescriptorEncoder) -> fmt::Result {
        let series: Vec<_> = self
            .views
            .iter()
            .map(|view| (view_labels(view), view.metrics.counters()))
            .collect();
        for counter in ViewMetrics::default().counters() {
            let help = counter.help.replace("Microseconds", "Seconds");
            encode_counter(encoder, "fvhost", counter.name, &help, &series)?;
        }
        Ok(())
    }

    /// The active version's own counts, labelled with the version.
    fn version_counters(&self, encoder: &mut DescriptorEncoder) -> fmt::Result {
        let series: Vec<_> = self
            .views
            .iter()
            .map(|view| {
                let mut labels = view_labels(view);
                labels.push(("version", view.active.id().to_string()));
                (labels, view.active.metrics.counters())
            })
            .collect();
        let wanted = [
            "messages",
            "rows_out",
            "batch_failures",
            "dead_letters",
            "transform_micros",
        ];
        for name in wanted {
            let help = format!("`{name}` of the view's active version alone.");
            encode_counter(encoder, "fvhost_version", name, &help, &series)?;
        }
        Ok(())
    }

    fn gauges(&self, encoder: &mut DescriptorEncoder) -> fmt::Result {
        let mut lag = encoder.encode_descriptor(
            "fvhost_consumer_lag",
            "Messages of an assigned partition not yet written: its end offset minus the next offset to write.",
            None,
            MetricType::Gauge,
        )?;
        for view in &self.views {
            let partitions = view
                .metrics
                .partition_lag
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
            for (partition, messages) in partitions {
                let mut labels = view_labels(view);
                labels.push(("partition", partition.to_string()));
                ConstGauge::new(messages).encode(lag.encode_family(&labels)?)?;
            }
        }
        let mut freshness = encoder.encode_descriptor(
            "fvhost_freshness_seconds",
            "Now minus the newest event time the view wrote (absent until it wrote one).",
            None,
            MetricType::Gauge,
        )?;
        for view in &self.views {
            if let Some(seconds) = view.metrics.freshness_seconds(self.now_micros) {
                ConstGauge::new(seconds).encode(freshness.encode_family(&view_labels(view))?)?;
            }
        }
        let mut paused = encoder.encode_descriptor(
            "fvhost_view_paused",
            "1 while the view is paused after failing batch after batch, else 0.",
            None,
            MetricType::Gauge,
        )?;
        for view in &self.views {
            let value = i64::from(view.metrics.snapshot().pause.is_some());
            ConstGauge::new(value).encode(paused.encode_family(&view_labels(view))?)?;
        }
        let mut memory = encoder.encode_descriptor(
            "fvhost_transform_memory_high_water_bytes",
            "The most linear memory one call of the active version's transform grew to.",
            None,
            MetricType::Gauge,
        )?;
        for view in &self.views {
            if let Some(transformer) = &view.active.pipeline.transformer {
                let mut labels = view_labels(view);
                labels.push(("version", view.active.id().to_string()));
                ConstGauge::new(transformer.memory_high_water() as i64)
                    .encode(memory.encode_family(&labels)?)?;
            }
        }
        let mut tier = encoder.encode_descriptor(
            "fvhost_module_optimized",
            "1 when the active version's module runs optimized (Cranelift) code, 0 while on the baseline tier; absent without a module.",
            None,
            MetricType::Gauge,
        )?;
        for view in &self.views {
            if let Some(module) = view.active.pipeline.module() {
                let mut labels = view_labels(view);
                labels.push(("version", view.active.id().to_string()));
                let optimized = i64::from(module.tier().as_str() == "optimized");
                ConstGauge::new(optimized).encode(tier.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }

    fn stage_histograms(&self, encoder: &mut DescriptorEncoder) -> fmt::Result {
        let mut histogram = encoder.encode_descriptor(
            "fvhost_batch_stage_seconds",
            "How long each stage of a batch took: poll, decode, transform, encode, write, commit.",
            None,
            MetricType::Histogram,
        )?;
        for view in &self.views {
            for stage in Stage::ALL {
                let mut labels = view_labels(view);
                labels.push(("stage", stage.name().to_string()));
                view.metrics
                    .stage_seconds
                    .of(stage)
                    .encode(histogram.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }
}
