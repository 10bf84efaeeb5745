//! The server's TLS configuration: a configured certificate and key, or a self-signed
//! certificate made on first start and kept in `DIR/tls/`, so a client can trust exactly it.
//! Either is read again on SIGHUP (a renewed certificate is served without a restart).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use super::ServeError;

/// Where the certificate comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsSource {
    /// PEM files the operator provides: the chain (leaf first) and its private key.
    Files {
        /// The certificate chain.
        cert: PathBuf,
        /// The private key.
        key: PathBuf,
    },
    /// A self-signed certificate in `DIR/tls/`, made on first start for these names
    /// (DNS names or IP addresses) and kept for later starts.
    SelfSigned {
        /// The data directory's `tls` folder.
        dir: PathBuf,
        /// Subject alternative names.
        names: Vec<String>,
    },
}

/// The certificate file a client can trust, and the rustls configuration serving it.
#[derive(Debug)]
pub struct Tls {
    /// The certificate's PEM file.
    pub cert_path: PathBuf,
    /// HTTP/2 and HTTP/1.1 by ALPN, TLS 1.2 and 1.3, ring's safe defaults; each
    /// handshake takes the certificate [`Tls::certificate`] holds at that moment.
    pub config: Arc<ServerConfig>,
    /// The certificate being served, replaced by [`Certificate::reload`].
    pub certificate: Arc<Certificate>,
}

/// The certificate and key new handshakes get: read from the source at start and again
/// at each reload (SIGHUP), swapped whole, so connections already open keep theirs and
/// a pair that does not load (a key that does not match, a file half written) leaves
/// the current one in place.
#[derive(Debug)]
pub struct Certificate {
    source: TlsSource,
    provider: Arc<CryptoProvider>,
    current: ArcSwap<CertifiedKey>,
}

impl Certificate {
    /// Read the source again (renewing a self-signed certificate that is due) and serve
    /// it from the next handshake on; on any error the current certificate stays.
    pub fn reload(&self) -> Result<(), ServeError> {
        let (_, key) = self.source.certified(&self.provider)?;
        self.current.store(Arc::new(key));
        Ok(())
    }
}

impl ResolvesServerCert for Certificate {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

impl TlsSource {
    /// Load (or make, for a self-signed source) the certificate and key.
    pub fn load(&self) -> Result<Tls, ServeError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let (cert_path, key) = self.certified(&provider)?;
        let certificate = Arc::new(Certificate {
            source: self.clone(),
            provider: Arc::clone(&provider),
            current: ArcSwap::from_pointee(key),
        });
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| ServeError::Tls(e.to_string()))?
            .with_no_client_auth()
            .with_cert_resolver(Arc::clone(&certificate) as Arc<dyn ResolvesServerCert>);
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Tls {
            cert_path,
            config: Arc::new(config),
            certificate,
        })
    }

    /// The certificate file and the chain and key read from the source, checked to
    /// belong together.
    fn certified(&self, provider: &CryptoProvider) -> Result<(PathBuf, CertifiedKey), ServeError> {
        let (cert, key) = match self {
            TlsSource::Files { cert, key } => (cert.clone(), key.clone()),
            TlsSource::SelfSigned { dir, names } => self_signed(dir, names)?,
        };
        let chain = CertificateDer::pem_file_iter(&cert)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|e| ServeError::Tls(format!("{}: {e}", cert.display())))?;
        if chain.is_empty() {
            return Err(ServeError::Tls(format!(
                "{}: no certificate in the file",
                cert.display()
            )));
        }
        let private = PrivateKeyDer::from_pem_file(&key)
            .map_err(|e| ServeError::Tls(format!("{}: {e}", key.display())))?;
        let certified = CertifiedKey::from_der(chain, private, provider).map_err(|e| {
            ServeError::Tls(format!(
                "{} and {} do not make a usable certificate: {e}",
                cert.display(),
                key.display()
            ))
        })?;
        Ok((cert, certified))
    }
}

/// How long a self-signed certificate is valid: a year (the ceiling is two;
/// browsers cap public certificates at 398 days, and a year keeps renewal routine).
const SELF_SIGNED_DAYS: i64 = 365;
/// A self-signed certificate with less than this left is renewed at start.
const RENEW_BEFORE_DAYS: i64 = 30;

/// `dir/cert.pem` and `dir/key.pem`, made now if they do not exist yet, or renewed (a new
/// key and certificate) when the certificate expires within [`RENEW_BEFORE_DAYS`]. Its
/// expiry is kept beside it in `dir/cert.expires` (RFC 3339); a certificate without one
/// was made by an older latchkey, valid for centuries, and is renewed once.
fn self_signed(dir: &Path, names: &[String]) -> Result<(PathBuf, PathBuf), ServeError> {
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    let expiry = dir.join("cert.expires");
    let now = time::OffsetDateTime::now_utc();
    let expires = std::fs::read_to_string(&expiry).ok().and_then(|text| {
        time::OffsetDateTime::parse(text.trim(), &time::format_description::well_known::Rfc3339)
            .ok()
    });
    let fresh = expires.is_some_and(|at| at - now > time::Duration::days(RENEW_BEFORE_DAYS));
    if cert.exists() && key.exists() && fresh {
        return Ok((cert, key));
    }
    let io = |path: &Path, e: std::io::Error| ServeError::Tls(format!("{}: {e}", path.display()));
    std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    let failed = |e: rcgen::Error| ServeError::Tls(format!("the self-signed certificate: {e}"));
    let mut params = rcgen::CertificateParams::new(names.to_vec()).map_err(failed)?;
    // A little slack before now, for clients whose clocks run behind.
    params.not_before = now - time::Duration::minutes(5);
    params.not_after = now + time::Duration::days(SELF_SIGNED_DAYS);
    let signing_key = rcgen::KeyPair::generate().map_err(failed)?;
    let made = params.self_signed(&signing_key).map_err(failed)?;
    let not_after = params
        .not_after
        .format(&time::format_description::well_known::Rfc3339)
        .map_err(|e| ServeError::Tls(format!("the certificate's expiry: {e}")))?;
    // Each file is replaced whole (written aside, then renamed), so a crash leaves the
    // old pair or the new one, and the key is never readable by others on the way.
    replace_file(&key, signing_key.serialize_pem().as_bytes(), 0o600).map_err(|e| io(&key, e))?;
    replace_file(&cert, made.pem().as_bytes(), 0o644).map_err(|e| io(&cert, e))?;
    replace_file(&expiry, not_after.as_bytes(), 0o644).map_err(|e| io(&expiry, e))?;
    match expires {
        Some(_) => tracing::info!(expires = %not_after, "the self-signed certificate was renewed"),
        None => tracing::info!(expires = %not_after, "a self-signed certificate was made"),
    }
    Ok((cert, key))
}

/// Replace `path` with `bytes`, created with `mode`: written to a new file beside it,
/// synced, then renamed over it.
fn replace_file(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    let name = path
        .file_name()
        .map_or_else(Default::default, |n| n.to_string_lossy());
    let aside = path.with_file_name(format!("{name}.new"));
    let _ = std::fs::remove_file(&aside);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = options.open(&aside)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&aside, path)
}
