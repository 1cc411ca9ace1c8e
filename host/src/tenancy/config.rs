//! `host.yaml`: the tenants one `fvhost run --config` serves, their repos,
//! limits and admin credentials.
//!
//! ```yaml
//! admin:
//!   listen: 127.0.0.1:6570              # loopback unless set otherwise
//!   operator_token_env: FVHOST_OPERATOR_TOKEN
//! defaults:                              # every tenant's limits unless it sets its own
//!   memory: 256MiB
//!   time_per_batch: 10s
//! tenants:
//!   - name: ranking
//!     repo: ./ranking                    # relative to host.yaml
//!     token_file: ./secrets/ranking.token
//!     limits: { memory: 64MiB, instances_in_flight: 1 }
//! ```

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::token::{TokenDigest, TokenSource};
use crate::repo::FeatureRepo;
use crate::repo::duration::parse_duration;
use crate::transform::Limits;
use crate::transform::limits::LogRate;

/// The admin API's address when host.yaml does not set one.
pub const DEFAULT_ADMIN: &str = "127.0.0.1:6570";

/// A loaded, checked host configuration.
#[derive(Debug)]
pub struct HostConfig {
    pub admin: AdminConfig,
    pub tenants: Vec<Tenant>,
    /// What is allowed but unwise (a short token, a token file others can
    /// read), for the host to log at start-up.
    pub warnings: Vec<String>,
}

/// The admin API: where it listens and the operator's credential.
#[derive(Debug)]
pub struct AdminConfig {
    pub listen: SocketAddr,
    pub operator: Option<TokenDigest>,
}

/// One tenant: its repo (whose project is its key space), limits and credential.
#[derive(Debug)]
pub struct Tenant {
    pub name: String,
    pub repo: FeatureRepo,
    pub limits: Limits,
    /// `None`: only the operator manages this tenant's views.
    pub token: Option<TokenDigest>,
}

/// A host.yaml that cannot be used, with what and where.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct HostConfigError {
    pub path: String,
    pub message: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHostConfig {
    #[serde(default)]
    admin: RawAdmin,
    #[serde(default)]
    defaults: RawLimits,
    tenants: Vec<RawTenant>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAdmin {
    listen: Option<String>,
    operator_token_file: Option<PathBuf>,
    operator_token_env: Option<String>,
    /// Only to say why it is refused.
    operator_token: Option<serde_yaml::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTenant {
    name: String,
    repo: PathBuf,
    token_file: Option<PathBuf>,
    token_env: Option<String>,
    /// Only to say why it is refused.
    token: Option<serde_yaml::Value>,
    #[serde(default)]
    limits: RawLimits,
}

/// Limits as written: sizes like `64MiB`, durations like `2s`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    memory: Option<serde_yaml::Value>,
    time_per_batch: Option<serde_yaml::Value>,
    output: Option<serde_yaml::Value>,
    output_rows: Option<usize>,
    module: Option<serde_yaml::Value>,
    instances_in_flight: Option<usize>,
    log_lines_per_batch: Option<u32>,
    log_lines_per_second: Option<u32>,
    fuel_per_batch: Option<u64>,
}

impl HostConfig {
    /// Reads host.yaml, its tenants' repos and credentials. Every problem
    /// is reported at once, each naming the field it is about.
    pub fn load(path: &Path) -> Result<Self, HostConfigError> {
        let shown = path.display().to_string();
        let fail = |message: String| HostConfigError {
            path: shown.clone(),
            message,
        };
        let text = crate::bounded_file::read_text(
            path,
            crate::bounded_file::MAX_CONFIG_BYTES,
            "host.yaml",
        )
        .map_err(|e| fail(e.to_string()))?;
        let raw: RawHostConfig = serde_yaml::from_str(&text).map_err(|e| fail(e.to_string()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        let mut errors = Vec::new();
        let mut warnings = Vec::new();
        let admin = admin_config(&raw.admin, base, &mut errors, &mut warnings);
        let defaults = limits(&raw.defaults, &Limits::default(), "defaults", &mut errors);
        let mut tenants = Vec::new();
        let (mut names, mut projects) = (BTreeSet::new(), BTreeSet::new());
        if raw.tenants.is_empty() {
            errors.push("tenants: list at least one tenant".into());
        }
        for (i, tenant) in raw.tenants.iter().enumerate() {
            let at = format!("tenants[{i}] (`{}`)", tenant.name);
            if !valid_name(&tenant.name) {
                errors.push(format!(
                    "{at}: field `name`: use lowercase letters, digits, `-` and `_`"
                ));
            }
            if !names.insert(tenant.name.clone()) {
                errors.push(format!("{at}: field `name`: another tenant has this name"));
            }
            let Some(loaded) =
                load_tenant(tenant, base, &defaults, &at, &mut errors, &mut warnings)
            else {
                continue;
            };
            if !projects.insert(loaded.repo.project().to_string()) {
                errors.push(format!(
                    "{at}: field `repo`: project `{}` is another tenant's key space; each tenant needs its own project",
                    loaded.repo.project()
                ));
            }
            tenants.push(loaded);
        }
        refuse_shared_tokens(&admin, &tenants, &mut errors);
        if !errors.is_empty() {
            return Err(fail(errors.join("\n  ")));
        }
        Ok(Self {
            admin,
            tenants,
            warnings,
        })
    }
}

/// A token opens the first principal it matches: two principals with one
/// token would leave the second's routes closed to it and the first's open
/// to its holder. Every principal, the operator included, needs its own.
fn refuse_shared_tokens(admin: &AdminConfig, tenants: &[Tenant], errors: &mut Vec<String>) {
    let operator = admin
        .operator
        .as_ref()
        .map(|token| ("the operator".to_string(), token));
    let tenants = tenants.iter().filter_map(|t| {
        t.token
            .as_ref()
            .map(|token| (format!("tenant `{}`", t.name), token))
    });
    let principals: Vec<(String, &TokenDigest)> = operator.into_iter().chain(tenants).collect();
    for (i, (name, token)) in principals.iter().enumerate() {
        if let Some((first, _)) = principals[..i].iter().find(|(_, t)| t.matches(token)) {
            errors.push(format!(
                "{name} has the same admin token as {first}: every tenant and the operator need their own token"
            ));
        }
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

fn admin_config(
    raw: &RawAdmin,
    base: &Path,
    errors: &mut Vec<String>,
    warnings: &mut Vec<String>,
) -> AdminConfig {
    let listen = raw.listen.as_deref().unwrap_or(DEFAULT_ADMIN);
    let listen = listen.parse().unwrap_or_else(|_| {
        errors.push(format!(
            "admin: field `listen`: `{listen}` is not an address like 127.0.0.1:6570"
        ));
        DEFAULT_ADMIN
            .parse()
            .expect("the default admin address parses")
    });
    if raw.operator_token.is_some() {
        errors.push(
            "admin: field `operator_token`: credentials are never read from host.yaml; use operator_token_file or operator_token_env".into(),
        );
    }
    let operator = read_token(
        raw.operator_token_file.as_ref(),
        raw.operator_token_env.as_ref(),
        "admin: operator_token_file/operator_token_env",
        base,
        errors,
        warnings,
    );
    AdminConfig { listen, operator }
}

/// The digest of the credential in `file` or `env` (one of them, or none).
fn read_token(
    file: Option<&PathBuf>,
    env: Option<&String>,
    fields: &str,
    base: &Path,
    errors: &mut Vec<String>,
    warnings: &mut Vec<String>,
) -> Option<TokenDigest> {
    let source = match (file, env) {
        (Some(_), Some(_)) => {
            errors.push(format!("{fields}: set one, not both"));
            return None;
        }
        (Some(file), None) => TokenSource::File(file.clone()),
        (None, Some(env)) => TokenSource::Env(env.clone()),
        (None, None) => return None,
    };
    match source.read(base) {
        Ok((token, weaknesses)) => {
            warnings.extend(weaknesses.into_iter().map(|w| format!("{fields}: {w}")));
            Some(token)
        }
        Err(e) => {
            errors.push(format!("{fields}: {e}"));
            None
        }
    }
}

fn load_tenant(
    raw: &RawTenant,
    base: &Path,
    defaults: &Limits,
    at: &str,
    errors: &mut Vec<String>,
    warnings: &mut Vec<String>,
) -> Option<Tenant> {
    if raw.token.is_some() {
        errors.push(format!(
            "{at}: field `token`: credentials are never read from host.yaml; use token_file or token_env"
        ));
    }
    let token = read_token(
        raw.token_file.as_ref(),
        raw.token_env.as_ref(),
        &format!("{at}: token_file/token_env"),
        base,
        errors,
        warnings,
    );
    let limits = limits(&raw.limits, defaults, &format!("{at}: limits"), errors);
    let repo = match crate::repo::load(&base.join(&raw.repo)) {
        Ok(repo) => repo,
        Err(e) => {
            errors.push(format!("{at}: field `repo`: {e}"));
            return None;
        }
    };
    Some(Tenant {
        name: raw.name.clone(),
        repo,
        limits,
        token,
    })
}

fn limits(raw: &RawLimits, base: &Limits, at: &str, errors: &mut Vec<String>) -> Limits {
    let mut limits = base.clone();
    let mut size = |value: &Option<serde_yaml::Value>, field: &str, into: &mut usize| {
        if let Some(value) = value {
            match parse_size(value) {
                Ok(bytes) => *into = bytes,
                Err(e) => errors.push(format!("{at}: field `{field}`: {e}")),
            }
        }
    };
    size(&raw.memory, "memory", &mut limits.memory_bytes);
    size(&raw.output, "output", &mut limits.output_bytes);
    size(&raw.module, "module", &mut limits.module_bytes);
    if let Some(value) = &raw.time_per_batch {
        match duration(value) {
            Ok(time) if !time.is_zero() => limits.time_per_batch = time,
            Ok(_) => errors.push(format!("{at}: field `time_per_batch`: must be above zero")),
            Err(e) => errors.push(format!("{at}: field `time_per_batch`: {e}")),
        }
    }
    if let Some(n) = raw.instances_in_flight {
        if n == 0 {
            errors.push(format!(
                "{at}: field `instances_in_flight`: must be at least 1"
            ));
        }
        limits.instances_in_flight = n.max(1);
    }
    if let Some(n) = raw.output_rows {
        limits.output_rows = n;
    }
    if let Some(n) = raw.log_lines_per_batch {
        limits.log_lines_per_batch = n;
    }
    if raw.fuel_per_batch.is_some() {
        limits.fuel_per_batch = raw.fuel_per_batch;
    }
    // A bucket of its own, never the defaults' one shared with other tenants.
    let per_second = raw
        .log_lines_per_second
        .unwrap_or(limits.log_rate.lines_per_second());
    limits.log_rate = LogRate::per_second(per_second);
    limits
}

fn duration(value: &serde_yaml::Value) -> Result<Duration, String> {
    match value {
        serde_yaml::Value::Number(n) => n
            .as_u64()
            .map(Duration::from_secs)
            .ok_or_else(|| format!("`{n}` is not a whole number of seconds")),
        serde_yaml::Value::String(text) => parse_duration(text),
        other => Err(format!("`{other:?}` is not a duration (e.g. 500ms, 2s)")),
    }
}

/// Sizes as bytes (`1048576`) or with a binary unit (`512KiB`, `64MiB`, `1GiB`).
pub fn parse_size(value: &serde_yaml::Value) -> Result<usize, String> {
    let text = match value {
        serde_yaml::Value::Number(n) => n.to_string(),
        serde_yaml::Value::String(text) => text.trim().to_string(),
        other => return Err(format!("`{other:?}` is not a size (e.g. 64MiB)")),
    };
    let digits = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits);
    let number: usize = number
        .parse()
        .map_err(|_| format!("`{text}` is not a size (e.g. 64MiB)"))?;
    let scale: usize = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        other => return Err(format!("`{other}` is not a size unit (B, KiB, MiB, GiB)")),
    };
    number
        .checked_mul(scale)
        .ok_or_else(|| format!("`{text}` is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn size(text: &str) -> Result<usize, String> {
        parse_size(&serde_yaml::Value::String(text.into()))
    }

    /// A repo of `project` with one stream view and no transform.
    fn repo(dir: &Path, project: &str) {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(
            dir.join("feature_store.yaml"),
            format!("project: {project}\nprovider: local\nonline_store:\n  type: redis\n  connection_string: \"127.0.0.1:6379\"\n"),
        )
        .unwrap();
        std::fs::write(
            dir.join("definitions.yaml"),
            "entities:\n  - {name: driver, join_keys: [driver_id], value_type: INT64}\nsources:\n  - {name: history, type: file, path: h.parquet, timestamp_field: ts}\n  - name: events\n    type: kafka\n    kafka_bootstrap_servers: 127.0.0.1:9092\n    topic: events\n    timestamp_field: ts\n    batch_source: history\n    message_format: {type: json, schema_json: \"driver_id bigint, ts timestamp, x double\"}\nstream_feature_views:\n  - {name: v, entities: [driver], source: events, schema: [{name: x, dtype: Float64}]}\n",
        )
        .unwrap();
    }

    #[test]
    fn a_valid_host_yaml_gives_each_tenant_its_repo_limits_and_token() {
        let dir = tempfile::tempdir().unwrap();
        repo(&dir.path().join("a"), "project_a");
        std::fs::write(dir.path().join("a.token"), "token-a\n").unwrap();
        std::fs::write(
            dir.path().join("host.yaml"),
            "defaults: {time_per_batch: 2s}\ntenants:\n  - {name: a, repo: a, token_file: a.token, limits: {memory: 64MiB}}\n",
        )
        .unwrap();
        let config = HostConfig::load(&dir.path().join("host.yaml")).unwrap();
        let tenant = &config.tenants[0];
        assert_eq!(tenant.repo.project(), "project_a");
        assert_eq!(tenant.limits.memory_bytes, 64 << 20);
        assert_eq!(tenant.limits.time_per_batch, Duration::from_secs(2));
        assert_eq!(tenant.token, Some(TokenDigest::of("token-a")));
        assert_eq!(config.admin.listen.to_string(), DEFAULT_ADMIN);
    }

    #[test]
    fn every_mistake_is_named_and_a_token_in_the_yaml_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        repo(&dir.path().join("a"), "shared");
        repo(&dir.path().join("b"), "shared");
        std::fs::write(
            dir.path().join("host.yaml"),
            "admin: {listen: nowhere}\ntenants:\n  - {name: a, repo: a, token: hunter2}\n  - {name: B!, repo: b, token_env: FVHOST_TEST_UNSET_TOKEN, limits: {memory: 64MB}}\n",
        )
        .unwrap();
        let error = HostConfig::load(&dir.path().join("host.yaml"))
            .unwrap_err()
            .to_string();
        for expected in [
            "admin: field `listen`: `nowhere` is not an address",
            "tenants[0] (`a`): field `token`: credentials are never read from host.yaml",
            "tenants[1] (`B!`): field `name`: use lowercase letters",
            "environment variable FVHOST_TEST_UNSET_TOKEN is not set or empty",
            "field `memory`: `MB` is not a size unit",
            "project `shared` is another tenant's key space",
        ] {
            assert!(
                error.contains(expected),
                "missing {expected:?} in:\n{error}"
            );
        }
        assert!(!error.contains("hunter2"), "the token is never echoed");
    }

    #[test]
    fn sizes_are_bytes_or_binary_units() {
        assert_eq!(size("1048576"), Ok(1 << 20));
        assert_eq!(size("64MiB"), Ok(64 << 20));
        assert_eq!(size("512 KiB"), Ok(512 << 10));
        assert!(
            size("64MB")
                .unwrap_err()
                .contains("`MB` is not a size unit")
        );
        assert!(size("lots").is_err());
    }

    #[test]
    fn a_token_shared_by_two_principals_is_refused_never_shown() {
        let dir = tempfile::tempdir().unwrap();
        repo(&dir.path().join("good"), "project_good");
        repo(&dir.path().join("dup"), "project_dup");
        for (file, token) in [
            ("good.token", "token-of-good-0123456789"),
            ("dup.token", "token-of-good-0123456789\n"),
            ("op.token", "operator-token-0123456789"),
        ] {
            std::fs::write(dir.path().join(file), token).unwrap();
        }
        let host_yaml = |dup_token: &str| {
            std::fs::write(
                dir.path().join("host.yaml"),
                format!("admin: {{operator_token_file: op.token}}\ntenants:\n  - {{name: good, repo: good, token_file: good.token}}\n  - {{name: dup, repo: dup, token_file: {dup_token}}}\n"),
            )
            .unwrap();
            HostConfig::load(&dir.path().join("host.yaml"))
        };
        let error = host_yaml("dup.token").unwrap_err().to_string();
        assert!(
            error.contains("tenant `dup` has the same admin token as tenant `good`"),
            "{error}"
        );
        assert!(
            !error.contains("token-of-good"),
            "the token is never echoed"
        );
        std::fs::write(dir.path().join("spaced.token"), " token-of-good-0123456789").unwrap();
        let error = host_yaml("spaced.token").unwrap_err().to_string();
        assert!(
            error.contains("tenant `dup` has the same admin token as tenant `good`"),
            "whitespace around a token is not part of it: {error}"
        );
        let error = host_yaml("op.token").unwrap_err().to_string();
        assert!(
            error.contains("tenant `dup` has the same admin token as the operator"),
            "{error}"
        );
    }
}
