//! `feature_store.yaml`: the same file, and the same keys, Feast reads.

use serde::Deserialize;

use crate::types::KeyVersion;

/// The parts of `feature_store.yaml` fvhost uses. Keys it does not use
/// (`provider`, `offline_store`, ...) are accepted and ignored, so one file
/// serves both Feast and fvhost.
#[derive(Debug, Clone, Deserialize)]
pub struct StoreConfig {
    pub project: String,
    pub online_store: OnlineStoreConfig,
    /// Feast's registry: where `feast apply` keeps the definitions. Read when
    /// the repo has no YAML definitions (see [`crate::repo::feast_registry`]).
    #[serde(default)]
    pub registry: Option<RegistrySetting>,
    #[serde(default = "default_key_version")]
    pub entity_key_serialization_version: u32,
}

/// `registry:` in `feature_store.yaml`: a path, or Feast's mapping form.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum RegistrySetting {
    Path(String),
    Config {
        path: String,
        #[serde(default)]
        registry_type: Option<String>,
    },
}

fn default_key_version() -> u32 {
    3
}

/// The `online_store` section.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OnlineStoreConfig {
    #[serde(rename = "type")]
    pub store_type: String,
    #[serde(default = "default_redis_type")]
    pub redis_type: String,
    #[serde(default = "default_connection_string")]
    pub connection_string: String,
    #[serde(default)]
    pub key_ttl_seconds: Option<u64>,
    #[serde(default)]
    pub skip_dedup: bool,
    #[serde(default)]
    pub sentinel_master: Option<String>,
    #[serde(default)]
    pub full_scan_for_deletion: Option<bool>,
    /// Feast's client for its own reads (`redis` or `glide`); fvhost's
    /// writes and reads do not depend on it.
    #[serde(default)]
    pub client: Option<String>,
}

/// How the Redis online store is deployed (`redis_type`, Feast's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedisType {
    /// `redis`: one server; only the connection string's first node is used.
    Single,
    /// `redis_cluster`: the connection string's nodes are seeds of a cluster.
    Cluster,
    /// `redis_sentinel`: the nodes are sentinels naming `sentinel_master`.
    Sentinel,
}

impl RedisType {
    pub fn parse(text: &str) -> Result<Self, String> {
        match text {
            "redis" => Ok(Self::Single),
            "redis_cluster" => Ok(Self::Cluster),
            "redis_sentinel" => Ok(Self::Sentinel),
            other => Err(format!(
                "`{other}` is not a Feast redis_type (redis, redis_cluster or redis_sentinel)"
            )),
        }
    }
}

fn default_redis_type() -> String {
    "redis".into()
}

fn default_connection_string() -> String {
    "localhost:6379".into()
}

impl StoreConfig {
    /// The entity key format this repo's keys are written in.
    pub fn key_version(&self) -> Option<KeyVersion> {
        KeyVersion::from_number(self.entity_key_serialization_version)
    }
}

/// A Feast Redis `connection_string`, split into nodes and options.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectionString {
    /// `host:port` nodes in the order given.
    pub nodes: Vec<String>,
    pub db: i64,
    pub username: Option<String>,
    pub password: Option<String>,
    pub ssl: bool,
    /// `ssl_ca_certs`: a PEM file of the certificate authorities to trust
    /// (redis-py's name, as Feast passes it); the system's roots otherwise.
    pub ssl_ca_certs: Option<String>,
    /// `ssl_cert_reqs=none`: accept any server certificate (redis-py's name).
    pub ssl_insecure: bool,
    /// Options fvhost does not use (Feast hands every option to redis-py,
    /// so `socket_timeout=5` and the like are legitimate): warned about at
    /// connect. A near miss of an option fvhost reads is refused instead.
    pub ignored: Vec<String>,
}

/// The options fvhost reads from a connection string.
const KNOWN_OPTIONS: [&str; 6] = [
    "db",
    "username",
    "password",
    "ssl",
    "ssl_ca_certs",
    "ssl_cert_reqs",
];

impl ConnectionString {
    /// Parses `host:port[,host:port...][,key=value...]`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut parsed = ConnectionString {
            nodes: Vec::new(),
            db: 0,
            username: None,
            password: None,
            ssl: false,
            ssl_ca_certs: None,
            ssl_insecure: false,
            ignored: Vec::new(),
        };
        let mut seen = std::collections::HashSet::new();
        for token in text.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            match token.split_once('=') {
                // A value holding a comma splits into a piece that looks
                // like a node: not shown, it may be part of a password.
                None if !seen.is_empty() => {
                    return Err(
                        "a part after the options is not an option (name=value): values cannot hold commas, and nodes come first".into(),
                    );
                }
                None => parsed.nodes.push(token.to_string()),
                Some((key, _)) if key.trim().is_empty() => {
                    return Err("an option has no name (`=value`)".into());
                }
                Some((key, value)) => {
                    let key = key.trim();
                    if !seen.insert(key.to_string()) {
                        return Err(format!("option `{key}` is given twice"));
                    }
                    parsed.set_option(key, value.trim())?
                }
            }
        }
        if parsed.nodes.is_empty() {
            return Err(format!("`{text}` names no host:port"));
        }
        parsed.addresses()?;
        Ok(parsed)
    }

    fn set_option(&mut self, key: &str, value: &str) -> Result<(), String> {
        match key {
            "db" => {
                self.db = value
                    .parse()
                    .map_err(|_| format!("db={value} is not a number"))?
            }
            "username" => self.username = Some(value.to_string()),
            "password" => self.password = Some(value.to_string()),
            "ssl" => {
                self.ssl = match value.to_ascii_lowercase().as_str() {
                    "true" | "yes" | "on" | "1" => true,
                    "false" | "no" | "off" | "0" => false,
                    other => {
                        return Err(format!(
                            "ssl={other}: not a yes/no value (true, yes, on, 1; false, no, off, 0)"
                        ));
                    }
                }
            }
            "ssl_certfile" | "ssl_keyfile" | "ssl_check_hostname" | "ssl_ca_path"
            | "ssl_ca_data" | "ssl_password" => {
                return Err(format!(
                    "{key}: not supported by fvhost (client certificates and other TLS settings); it takes ssl, ssl_ca_certs and ssl_cert_reqs"
                ));
            }
            "ssl_ca_certs" => self.ssl_ca_certs = Some(value.to_string()),
            "ssl_cert_reqs" => {
                self.ssl_insecure = match value.to_ascii_lowercase().as_str() {
                    "none" => true,
                    "required" => false,
                    other => {
                        return Err(format!(
                            "ssl_cert_reqs={other}: fvhost takes `required` (the default) or `none`"
                        ));
                    }
                }
            }
            other => {
                if let Some(meant) = near_miss(other) {
                    return Err(format!(
                        "`{other}` is not an option fvhost reads; did you mean `{meant}`?"
                    ));
                }
                self.ignored.push(other.to_string());
            }
        }
        Ok(())
    }

    /// The database, username and password every data node's connection
    /// uses (set on the connection, never spliced into a URL, so any
    /// character in a password is safe).
    pub fn redis_settings(&self) -> redis::RedisConnectionInfo {
        let mut settings = redis::RedisConnectionInfo::default().set_db(self.db);
        if let Some(username) = &self.username {
            settings = settings.set_username(username);
        }
        if let Some(password) = &self.password {
            settings = settings.set_password(password);
        }
        settings
    }

    /// Each node as `(host, port)`.
    pub fn addresses(&self) -> Result<Vec<(String, u16)>, String> {
        self.nodes
            .iter()
            .map(|node| {
                let (host, port) = node
                    .rsplit_once(':')
                    .ok_or_else(|| format!("`{node}` is not host:port"))?;
                let port = port
                    .parse::<u16>()
                    .map_err(|_| format!("`{node}`: `{port}` is not a port"))?;
                if host.is_empty() {
                    return Err(format!("`{node}` names no host"));
                }
                Ok((host.to_string(), port))
            })
            .collect()
    }
}

/// The option `key` is one edit (two, for longer names) away from, if any:
/// `pasword=...` would otherwise connect without the password.
fn near_miss(key: &str) -> Option<&'static str> {
    let lowercase = key.to_ascii_lowercase();
    KNOWN_OPTIONS.into_iter().find(|known| {
        let allowed = if known.len() < 5 { 1 } else { 2 };
        key != *known && edit_distance(&lowercase, known) <= allowed
    })
}

/// Levenshtein distance of two short ASCII names.
fn edit_distance(a: &str, b: &str) -> usize {
    let b = b.as_bytes();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.bytes().enumerate() {
        let mut current = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitute = previous[j] + usize::from(ca != *cb);
            current[j + 1] = substitute.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        previous = current;
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_fvhost_does_not_read_are_kept_for_a_warning_and_near_misses_refused() {
        let c = ConnectionString::parse("h:1,socket_timeout=5,health_check_interval=30").unwrap();
        assert_eq!(c.ignored, ["socket_timeout", "health_check_interval"]);
        for (typo, meant) in [
            ("pasword", "password"),
            ("user_name", "username"),
            ("ssl_ca_cert", "ssl_ca_certs"),
            ("DB", "db"),
        ] {
            let error = ConnectionString::parse(&format!("h:1,{typo}=x")).unwrap_err();
            assert!(
                error.contains(&format!("did you mean `{meant}`")),
                "{error}"
            );
        }
        assert_eq!(
            ConnectionString::parse("h:1,password=p")
                .unwrap()
                .password
                .as_deref(),
            Some("p")
        );
    }

    #[test]
    fn nodes_and_options() {
        let c = ConnectionString::parse("10.0.0.1:6379, 10.0.0.2:6379,db=2,password=pw").unwrap();
        assert_eq!(c.nodes, ["10.0.0.1:6379", "10.0.0.2:6379"]);
        assert_eq!(
            c.addresses().unwrap(),
            [
                ("10.0.0.1".to_string(), 6379),
                ("10.0.0.2".to_string(), 6379)
            ]
        );
        assert_eq!(c.redis_settings().password(), Some("pw"));
        assert!(ConnectionString::parse("redis:port").is_err());
        assert!(ConnectionString::parse("h:1,ssl=yes").unwrap().ssl);
        assert!(!ConnectionString::parse("h:1,ssl=0").unwrap().ssl);
        assert!(
            ConnectionString::parse("h:1,ssl=tru").is_err(),
            "a typo is not plaintext"
        );
        assert!(ConnectionString::parse("h:1,ssl=true,ssl_certfile=/c.pem").is_err());
        assert!(ConnectionString::parse("db=1").is_err());
    }
}
