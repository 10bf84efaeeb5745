//! `serve`'s configuration: flags and environment (through the CLI), an optional TOML
//! file, and defaults, in that order of precedence; validated before anything starts.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::{ServeConfig, TlsSource};

/// Every setting, each optional: one layer of configuration.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServeOptions {
    /// The data directory.
    pub data_dir: Option<PathBuf>,
    /// The policies folder.
    pub policies: Option<PathBuf>,
    /// `ip:port` to listen on.
    pub listen: Option<String>,
    /// PEM certificate chain (with `tls_key`); without both, a self-signed certificate.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key.
    pub tls_key: Option<PathBuf>,
    /// `https://host:port` used for every `uri` in responses.
    pub public_url: Option<String>,
    /// The account a fresh data directory is bootstrapped with.
    pub account: Option<String>,
    /// Its first administrator's email.
    pub admin_email: Option<String>,
    /// `text` or `json` logs on stderr.
    pub log_format: Option<LogFormat>,
    /// What is logged: a level (`error`, `warn`, `info`, `debug`, `trace`) or
    /// `tracing` directives such as `info,latchkey::api=debug`.
    pub log_level: Option<String>,
    /// Milliseconds a client has for the TLS handshake, for each request's head (and so
    /// between requests on a kept-alive connection), and for each request's body.
    pub client_timeout_ms: Option<u64>,
    /// SMTP server for invitation mail (`smtp://`, `smtps://`); without it, the outbox.
    pub smtp_url: Option<String>,
    /// The sender of invitation mail.
    pub mail_from: Option<String>,
    /// argon2id memory per password hash, in KiB (OWASP: 19456).
    pub argon2_memory_kib: Option<u32>,
    /// argon2id passes (OWASP: 2).
    pub argon2_iterations: Option<u32>,
    /// Password hashes computed at once (default: the cores less one, at least 1).
    pub password_workers: Option<usize>,
    /// Event destinations may be on non-public addresses (default: false).
    pub allow_private_destinations: Option<bool>,
    /// redb's page cache in MiB (default: 32).
    pub db_cache_mib: Option<u64>,
}

/// How logs are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// One human line per event.
    #[default]
    Text,
    /// One JSON object per event.
    Json,
}

/// How the server logs, on stderr.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Logging {
    /// One line of text or one JSON object per event.
    pub format: LogFormat,
    /// `tracing` filter directives (checked by [`ServeOptions::resolve`]).
    pub level: String,
}

/// A level, or `tracing` directives. A bare word must be a level: `tracing` would read
/// `inf` as "everything from the module `inf`", which is never what was meant.
fn check_log_level(level: &str) -> Result<(), String> {
    const LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];
    let bad = |why: String| format!("log_level: {level:?} {why}");
    for directive in level.split(',').map(str::trim) {
        if !directive.contains('=') && !LEVELS.contains(&directive.to_ascii_lowercase().as_str()) {
            return Err(bad(format!(
                "is not a level: {directive:?} is none of {}",
                LEVELS.join(", ")
            )));
        }
    }
    tracing_subscriber::EnvFilter::builder()
        .parse(level)
        .map(drop)
        .map_err(|e| bad(format!("is not a filter: {e}")))
}

/// The log level unless one is given.
pub const DEFAULT_LOG_LEVEL: &str = "info";

/// Defaults: `./latchkey-data`, `DATA_DIR/policies`, `127.0.0.1:8443`, a self-signed certificate,
/// and the account `default` with `admin@latchkey.localhost` on a fresh data directory.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8443";
/// How long a client has for each step, by default: 10 s.
pub const DEFAULT_CLIENT_TIMEOUT_MS: u64 = 10_000;

impl ServeOptions {
    /// Read a TOML file of the same keys (unknown keys are an error).
    pub fn from_file(path: &Path) -> Result<ServeOptions, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the config file {}: {e}", path.display()))?;
        toml::from_str(&text).map_err(|e| format!("config file {}: {e}", path.display()))
    }

    /// `self`, with what it leaves unset taken from `lower`.
    #[must_use]
    pub fn or(self, lower: ServeOptions) -> ServeOptions {
        ServeOptions {
            data_dir: self.data_dir.or(lower.data_dir),
            policies: self.policies.or(lower.policies),
            listen: self.listen.or(lower.listen),
            tls_cert: self.tls_cert.or(lower.tls_cert),
            tls_key: self.tls_key.or(lower.tls_key),
            public_url: self.public_url.or(lower.public_url),
            account: self.account.or(lower.account),
            admin_email: self.admin_email.or(lower.admin_email),
            log_format: self.log_format.or(lower.log_format),
            log_level: self.log_level.or(lower.log_level),
            client_timeout_ms: self.client_timeout_ms.or(lower.client_timeout_ms),
            smtp_url: self.smtp_url.or(lower.smtp_url),
            mail_from: self.mail_from.or(lower.mail_from),
            argon2_memory_kib: self.argon2_memory_kib.or(lower.argon2_memory_kib),
            argon2_iterations: self.argon2_iterations.or(lower.argon2_iterations),
            password_workers: self.password_workers.or(lower.password_workers),
            allow_private_destinations: self
                .allow_private_destinations
                .or(lower.allow_private_destinations),
            db_cache_mib: self.db_cache_mib.or(lower.db_cache_mib),
        }
    }

    /// The final configuration, with defaults filled in; every error names its setting.
    pub fn resolve(self) -> Result<(ServeConfig, Logging), String> {
        let data_dir = self
            .data_dir
            .unwrap_or_else(|| PathBuf::from("./latchkey-data"));
        let listen_text = self.listen.unwrap_or_else(|| DEFAULT_LISTEN.to_owned());
        let listen: SocketAddr = listen_text.parse().map_err(|_| {
            format!("listen: {listen_text:?} is not an ip:port address (e.g. 127.0.0.1:8443)")
        })?;
        let tls = match (self.tls_cert, self.tls_key) {
            (Some(cert), Some(key)) => TlsSource::Files { cert, key },
            (None, None) => {
                let mut names = vec![
                    "localhost".to_owned(),
                    "127.0.0.1".to_owned(),
                    "::1".to_owned(),
                ];
                if !listen.ip().is_unspecified() && !listen.ip().is_loopback() {
                    names.push(listen.ip().to_string());
                }
                TlsSource::SelfSigned {
                    dir: data_dir.join("tls"),
                    names,
                }
            }
            _ => return Err("tls_cert and tls_key go together: give both or neither".into()),
        };
        if let Some(url) = &self.public_url
            && !url.starts_with("https://")
        {
            return Err(format!("public_url: {url:?} must start with https://"));
        }
        let client_timeout_ms = self.client_timeout_ms.unwrap_or(DEFAULT_CLIENT_TIMEOUT_MS);
        if !(100..=600_000).contains(&client_timeout_ms) {
            return Err(format!(
                "client_timeout_ms: {client_timeout_ms} is outside 100 to 600000 (0.1 s to 10 min)"
            ));
        }
        let owasp = crate::app::PasswordCost::default();
        let password_cost = crate::app::PasswordCost {
            memory_kib: self.argon2_memory_kib.unwrap_or(owasp.memory_kib),
            iterations: self.argon2_iterations.unwrap_or(owasp.iterations),
            parallelism: owasp.parallelism,
        };
        // Below OWASP's floor a stolen hash is cheap to crack; far above it a login
        // flood exhausts memory (two hashes run at once).
        if !(15 * 1024..=256 * 1024).contains(&password_cost.memory_kib) {
            return Err(format!(
                "argon2_memory_kib: {} is outside 15360 to 262144 (15 MiB to 256 MiB)",
                password_cost.memory_kib
            ));
        }
        if !(1..=10).contains(&password_cost.iterations) {
            return Err(format!(
                "argon2_iterations: {} is outside 1 to 10",
                password_cost.iterations
            ));
        }
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        let password_workers = self
            .password_workers
            .unwrap_or_else(|| cores.saturating_sub(1).max(1));
        if !(1..=256).contains(&password_workers) {
            return Err(format!(
                "password_workers: {password_workers} is outside 1 to 256"
            ));
        }
        let db_cache_mib = self
            .db_cache_mib
            .unwrap_or((crate::store::DEFAULT_CACHE_BYTES / (1024 * 1024)) as u64);
        if !(8..=65_536).contains(&db_cache_mib) {
            return Err(format!(
                "db_cache_mib: {db_cache_mib} is outside 8 to 65536 (8 MiB to 64 GiB)"
            ));
        }
        let smtp = match self.smtp_url {
            Some(url) => {
                let from = self
                    .mail_from
                    .unwrap_or_else(|| "latchkey <latchkey@localhost>".to_owned());
                // Checked now, so a bad URL or sender fails the start, naming the setting.
                crate::api::mail::Mailer::new(&url, &from)?;
                Some((url, from))
            }
            None => None,
        };
        let config = ServeConfig {
            policies: self
                .policies
                .unwrap_or_else(|| data_dir.join(crate::policy::builtin::DEFAULT_FOLDER)),
            data_dir,
            listen,
            tls,
            public_url: self.public_url,
            bootstrap_account: self.account.unwrap_or_else(|| "default".to_owned()),
            bootstrap_admin_email: self
                .admin_email
                .unwrap_or_else(|| "admin@latchkey.localhost".to_owned()),
            client_timeout: Duration::from_millis(client_timeout_ms),
            password_cost,
            password_workers,
            smtp,
            allow_private_destinations: self.allow_private_destinations.unwrap_or(false),
            db_cache_bytes: usize::try_from(db_cache_mib * 1024 * 1024).unwrap_or(usize::MAX),
        };
        let level = self
            .log_level
            .unwrap_or_else(|| DEFAULT_LOG_LEVEL.to_owned());
        check_log_level(&level)?;
        let logging = Logging {
            format: self.log_format.unwrap_or_default(),
            level,
        };
        Ok((config, logging))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_win_over_the_file_and_the_file_over_defaults() {
        let file: ServeOptions =
            toml::from_str("listen = \"127.0.0.1:9000\"\naccount = \"filed\"\n").unwrap();
        let flags = ServeOptions {
            listen: Some("127.0.0.1:9100".into()),
            ..Default::default()
        };
        let (config, logging) = flags.or(file).resolve().unwrap();
        assert_eq!(config.listen.port(), 9100);
        assert_eq!(config.bootstrap_account, "filed");
        assert_eq!(config.data_dir, PathBuf::from("./latchkey-data"));
        assert_eq!(
            logging,
            Logging {
                format: LogFormat::Text,
                level: "info".into()
            }
        );
    }

    #[test]
    fn log_levels_are_levels_or_directives() {
        for good in [
            "debug",
            "WARN",
            "info,latchkey::api=debug",
            "latchkey=trace",
            "off",
        ] {
            assert_eq!(check_log_level(good), Ok(()), "{good}");
        }
        for bad in ["loud", "inf", "info,verbose", "latchkey=loudest", ""] {
            assert!(check_log_level(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn bad_settings_are_refused_naming_the_setting() {
        let bad = |options: ServeOptions| options.resolve().unwrap_err();
        assert!(
            bad(ServeOptions {
                listen: Some("localhost".into()),
                ..Default::default()
            })
            .starts_with("listen:")
        );
        assert!(
            bad(ServeOptions {
                tls_cert: Some("c.pem".into()),
                ..Default::default()
            })
            .contains("give both or neither")
        );
        assert!(
            bad(ServeOptions {
                public_url: Some("http://x".into()),
                ..Default::default()
            })
            .starts_with("public_url:")
        );
        assert!(
            bad(ServeOptions {
                smtp_url: Some("mail.example.com".into()),
                ..Default::default()
            })
            .starts_with("smtp_url:")
        );
        assert!(
            bad(ServeOptions {
                smtp_url: Some("smtp://127.0.0.1:2525".into()),
                mail_from: Some("not a mailbox".into()),
                ..Default::default()
            })
            .starts_with("mail_from:")
        );
        assert!(
            bad(ServeOptions {
                log_level: Some("loud".into()),
                ..Default::default()
            })
            .starts_with("log_level:")
        );
        assert!(
            bad(ServeOptions {
                argon2_memory_kib: Some(1024),
                ..Default::default()
            })
            .starts_with("argon2_memory_kib:")
        );
        for millis in [0, 99, 600_001] {
            assert!(
                bad(ServeOptions {
                    client_timeout_ms: Some(millis),
                    ..Default::default()
                })
                .starts_with("client_timeout_ms:")
            );
        }
        let unknown = toml::from_str::<ServeOptions>("lisen = \"x\"").unwrap_err();
        assert!(unknown.to_string().contains("lisen"), "{unknown}");
    }
}
