//! Configuration, all from environment variables (see the README for the list).

use blazz_projections::kafka::KafkaConfig;
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Clone)]
pub struct Config {
    /// `DATABASE_URL`: an existing PostgreSQL database. Unset: `blazz up` runs a private cluster.
    pub database_url: Option<String>,
    /// `BLAZZ_ADDR`: where the API listens (default `127.0.0.1:8080`).
    pub addr: SocketAddr,
    /// `BLAZZ_DATA_DIR`: where the private cluster and generated secrets live (default `.blazz`).
    pub data_dir: PathBuf,
    /// `BLAZZ_OPERATOR_TOKEN`: bearer token for operator routes (creating workspaces).
    pub operator_token: Option<String>,
    /// `BLAZZ_DB_MAX_CONNECTIONS` (default 16).
    pub db_max_connections: u32,
    /// `BLAZZ_APPEND_WRITERS`: concurrent group-commit transactions (default: the cores, 2 to 8).
    pub append_writers: usize,
    /// `BLAZZ_SECRET_KEY`: base64 of 32 bytes sealing channel credentials. Unset: one generated once
    /// and kept in the data directory.
    pub secret_key: Option<String>,
    /// `BLAZZ_SECRET_KEYS_PREVIOUS`: comma-separated earlier keys, accepted for opening during rotation.
    pub previous_secret_keys: Vec<String>,
    /// `BLAZZ_AUDIT_SIGNING_KEY`: base64 of the 32-byte Ed25519 seed audit checkpoints are signed
    /// with. Unset: one generated once and kept in the data directory.
    pub audit_signing_key: Option<String>,
    /// `BLAZZ_AUDIT_CHECKPOINT_SECS`: how often the sealer signs checkpoints (default 300).
    pub audit_checkpoint_secs: u64,
    /// `BLAZZ_META_BASE_URL` (default `https://graph.facebook.com`).
    pub meta_base_url: String,
    /// `BLAZZ_META_API_VERSION` (default `v21.0`).
    pub meta_api_version: String,
    /// `BLAZZ_PUBLIC_URL`: where this gateway is reached; the sandbox posts its webhooks there
    /// (default `http://<BLAZZ_ADDR>`).
    pub public_url: Option<String>,
    /// `BLAZZ_SANDBOX_DELAY_MS`: the sandbox's delay between sent, delivered and read (default 300).
    pub sandbox_delay_ms: u64,
    /// `BLAZZ_SANDBOX_REPLY`: text the sandbox recipient answers with after reading (default none).
    pub sandbox_reply: Option<String>,
    /// `BLAZZ_SANDBOX_FAIL_CODE`: the sandbox fails every message with this Meta error code.
    pub sandbox_fail_code: Option<i64>,
    /// `BLAZZ_MAX_ATTEMPTS`: attempts per message for retry-later errors (default 5).
    pub max_attempts: u32,
    /// `BLAZZ_UNKNOWN_AFTER_SECS`: an attempt without outcome is marked unknown after this (default 600).
    pub unknown_after_secs: u64,
    /// `BLAZZ_RECIPIENT_PACE_SECS`: campaign messages to one recipient at least this far apart (default 6).
    pub recipient_pace_secs: f64,
    /// `BLAZZ_WEBHOOKS_ALLOW_PRIVATE`: outbound webhooks may go to private and loopback addresses
    /// (default false: the SSRF guard).
    pub webhooks_allow_private: bool,
    /// `BLAZZ_WEBHOOKS_TIMEOUT_MS`: time for one outbound webhook attempt (default 10000).
    pub webhooks_timeout_ms: u64,
    /// `BLAZZ_MEDIA_STORE`: `s3://<bucket>` (credentials, region and endpoint from the standard
    /// `AWS_*` variables) or a directory; unset: `<BLAZZ_DATA_DIR>/media`.
    pub media_store: Option<String>,
    /// `KAFKA_BROKERS` and `BLAZZ_KAFKA_*`: the scaled-out read side (unset: the log feed).
    pub kafka: Option<KafkaConfig>,
    /// `BLAZZ_REQUEST_TIMEOUT_SECS` (30), `BLAZZ_SOCKET_SEND_TIMEOUT_SECS` (5), `BLAZZ_MAX_CONCURRENT_REQUESTS` (1024),
    /// `BLAZZ_KEY_RATE_LIMIT` (requests per second per API key, 1000; 0: unlimited), `BLAZZ_BULK_SHARE` (0.25).
    pub limits: crate::limits::LimitSettings,
}

#[derive(Debug, thiserror::Error)]
#[error("invalid {name}: {message}")]
pub struct ConfigError {
    name: &'static str,
    message: String,
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn parsed<T: std::str::FromStr>(name: &'static str, default: T) -> Result<T, ConfigError>
where
    T::Err: std::fmt::Display,
{
    match var(name) {
        None => Ok(default),
        Some(v) => v.trim().parse().map_err(|e: T::Err| ConfigError { name, message: e.to_string() }),
    }
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            database_url: var("DATABASE_URL"),
            addr: parsed("BLAZZ_ADDR", SocketAddr::from(([127, 0, 0, 1], 8080)))?,
            data_dir: PathBuf::from(var("BLAZZ_DATA_DIR").unwrap_or_else(|| ".blazz".into())),
            operator_token: var("BLAZZ_OPERATOR_TOKEN"),
            db_max_connections: parsed("BLAZZ_DB_MAX_CONNECTIONS", 16)?,
            append_writers: parsed("BLAZZ_APPEND_WRITERS", blazz_commands::store::postgres::default_writers())?,
            secret_key: var("BLAZZ_SECRET_KEY"),
            previous_secret_keys: var("BLAZZ_SECRET_KEYS_PREVIOUS")
                .map(|v| v.split(',').map(|k| k.trim().to_owned()).filter(|k| !k.is_empty()).collect())
                .unwrap_or_default(),
            audit_signing_key: var("BLAZZ_AUDIT_SIGNING_KEY"),
            audit_checkpoint_secs: match parsed("BLAZZ_AUDIT_CHECKPOINT_SECS", 300)? {
                0 => {
                    return Err(ConfigError { name: "BLAZZ_AUDIT_CHECKPOINT_SECS", message: "must be positive".into() })
                }
                n => n,
            },
            meta_base_url: var("BLAZZ_META_BASE_URL").unwrap_or_else(|| "https://graph.facebook.com".into()),
            meta_api_version: var("BLAZZ_META_API_VERSION").unwrap_or_else(|| "v21.0".into()),
            public_url: var("BLAZZ_PUBLIC_URL"),
            sandbox_delay_ms: parsed("BLAZZ_SANDBOX_DELAY_MS", 300)?,
            sandbox_reply: var("BLAZZ_SANDBOX_REPLY"),
            sandbox_fail_code: var("BLAZZ_SANDBOX_FAIL_CODE")
                .map(|v| {
                    v.trim().parse().map_err(|e: std::num::ParseIntError| ConfigError {
                        name: "BLAZZ_SANDBOX_FAIL_CODE",
                        message: e.to_string(),
                    })
                })
                .transpose()?,
            max_attempts: parsed("BLAZZ_MAX_ATTEMPTS", 5)?,
            unknown_after_secs: parsed("BLAZZ_UNKNOWN_AFTER_SECS", 600)?,
            recipient_pace_secs: {
                let pace: f64 = parsed("BLAZZ_RECIPIENT_PACE_SECS", 6.0)?;
                if !(0.0..=86_400.0).contains(&pace) {
                    return Err(ConfigError {
                        name: "BLAZZ_RECIPIENT_PACE_SECS",
                        message: "must be 0 to 86400".into(),
                    });
                }
                pace
            },
            webhooks_allow_private: parsed("BLAZZ_WEBHOOKS_ALLOW_PRIVATE", false)?,
            media_store: var("BLAZZ_MEDIA_STORE"),
            webhooks_timeout_ms: match parsed("BLAZZ_WEBHOOKS_TIMEOUT_MS", 10_000)? {
                n @ 100..=120_000 => n,
                _ => {
                    return Err(ConfigError {
                        name: "BLAZZ_WEBHOOKS_TIMEOUT_MS",
                        message: "must be 100 to 120000".into(),
                    })
                }
            },
            limits: {
                let d = crate::limits::LimitSettings::default();
                let timeout: u64 = parsed("BLAZZ_REQUEST_TIMEOUT_SECS", d.request_timeout.as_secs())?;
                let max_concurrent: usize = parsed("BLAZZ_MAX_CONCURRENT_REQUESTS", d.max_concurrent)?;
                if timeout == 0 || max_concurrent == 0 {
                    return Err(ConfigError {
                        name: "BLAZZ_REQUEST_TIMEOUT_SECS/BLAZZ_MAX_CONCURRENT_REQUESTS",
                        message: "must be positive".into(),
                    });
                }
                let rate: u32 = parsed("BLAZZ_KEY_RATE_LIMIT", d.key_rate.map_or(0, |r| r.get()))?;
                let socket: u64 = parsed("BLAZZ_SOCKET_SEND_TIMEOUT_SECS", d.socket_send_timeout.as_secs())?;
                if socket == 0 {
                    return Err(ConfigError {
                        name: "BLAZZ_SOCKET_SEND_TIMEOUT_SECS",
                        message: "must be positive".into(),
                    });
                }
                let bulk_share: f64 = parsed("BLAZZ_BULK_SHARE", d.bulk_share)?;
                if !(bulk_share > 0.0 && bulk_share <= 1.0) {
                    return Err(ConfigError {
                        name: "BLAZZ_BULK_SHARE",
                        message: "must be above 0 and at most 1".into(),
                    });
                }
                crate::limits::LimitSettings {
                    bulk_share,
                    request_timeout: std::time::Duration::from_secs(timeout),
                    socket_send_timeout: std::time::Duration::from_secs(socket),
                    max_concurrent,
                    key_rate: std::num::NonZeroU32::new(rate),
                    ..d
                }
            },
            kafka: match var("KAFKA_BROKERS") {
                None => None,
                Some(brokers) => {
                    let defaults = KafkaConfig::new(brokers);
                    let partitions = parsed("BLAZZ_KAFKA_PARTITIONS", defaults.partitions)?;
                    if !(1..=1024).contains(&partitions) {
                        return Err(ConfigError {
                            name: "BLAZZ_KAFKA_PARTITIONS",
                            message: "must be between 1 and 1024".into(),
                        });
                    }
                    Some(KafkaConfig {
                        topic_prefix: var("BLAZZ_KAFKA_TOPIC_PREFIX").unwrap_or(defaults.topic_prefix.clone()),
                        group: var("BLAZZ_KAFKA_GROUP").unwrap_or(defaults.group.clone()),
                        partitions,
                        ..defaults
                    })
                }
            },
        })
    }
}

/// `postgres://user:secret@host/db` → `postgres://user:***@host/db`.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let creds = &url[scheme + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("database_url", &self.database_url.as_deref().map(redact_url))
            .field("addr", &self.addr)
            .field("data_dir", &self.data_dir)
            .field("operator_token", &self.operator_token.as_ref().map(|_| "<redacted>"))
            .field("db_max_connections", &self.db_max_connections)
            .field("append_writers", &self.append_writers)
            .field("secret_key", &self.secret_key.as_ref().map(|_| "<redacted>"))
            .field("previous_secret_keys", &self.previous_secret_keys.len())
            .field("audit_signing_key", &self.audit_signing_key.as_ref().map(|_| "<redacted>"))
            .field("audit_checkpoint_secs", &self.audit_checkpoint_secs)
            .field("meta_base_url", &self.meta_base_url)
            .field("meta_api_version", &self.meta_api_version)
            .field("public_url", &self.public_url)
            .field("sandbox_delay_ms", &self.sandbox_delay_ms)
            .field("kafka", &self.kafka)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_passwords_are_redacted() {
        assert_eq!(redact_url("postgres://blazz:hunter2@db:5432/blazz"), "postgres://blazz:***@db:5432/blazz");
        assert_eq!(redact_url("postgres://blazz@db/blazz"), "postgres://blazz@db/blazz");
        let c = Config {
            database_url: Some("postgres://u:pw@h/d".into()),
            addr: SocketAddr::from(([127, 0, 0, 1], 1)),
            data_dir: ".".into(),
            operator_token: Some("sekret".into()),
            db_max_connections: 1,
            append_writers: 1,
            secret_key: Some("c2VrcmV0LWtleQ==".into()),
            previous_secret_keys: vec![],
            audit_signing_key: Some("YXVkaXQta2V5".into()),
            audit_checkpoint_secs: 300,
            meta_base_url: "https://graph.facebook.com".into(),
            meta_api_version: "v21.0".into(),
            public_url: None,
            sandbox_delay_ms: 1,
            sandbox_reply: None,
            sandbox_fail_code: None,
            max_attempts: 5,
            unknown_after_secs: 600,
            recipient_pace_secs: 6.0,
            webhooks_allow_private: false,
            webhooks_timeout_ms: 10_000,
            media_store: None,
            kafka: None,
            limits: Default::default(),
        };
        let shown = format!("{c:?}");
        assert!(!shown.contains("sekret") && !shown.contains("pw@") && !shown.contains("c2VrcmV0"));
        assert!(!shown.contains("YXVkaXQta2V5"));
    }
}
