use std::str::FromStr;

/// The view's `transform.config`, as the host passed it to `init`.
///
/// Scalars arrive as their YAML text (`factor: 100` reads as `"100"`);
/// nested values arrive as JSON text.
#[derive(Debug, Clone, Default)]
pub struct Config {
    pairs: Vec<(String, String)>,
}

impl Config {
    /// Wraps key/value pairs; the host does this before calling `init`.
    pub fn new(pairs: Vec<(String, String)>) -> Self {
        Self { pairs }
    }

    /// The raw text of `key`, if the view set it.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// `key` parsed as `T`, or `default` when the view did not set it.
    /// A value that does not parse is an error naming the key and the value.
    pub fn parse_or<T: FromStr>(&self, key: &str, default: T) -> Result<T, String>
    where
        T::Err: std::fmt::Display,
    {
        match self.get(key) {
            None => Ok(default),
            Some(text) => text
                .parse()
                .map_err(|e| format!("config key `{key}`: cannot parse {text:?}: {e}")),
        }
    }

    /// Every key/value pair, in the order the host sent them.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.pairs.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}
