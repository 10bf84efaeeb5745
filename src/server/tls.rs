//! The server's TLS configuration: a configured certificate and key, or a self-signed
//! certificate made on first start and kept in `DIR/tls/`, so a client can trust exactly it.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

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
    /// HTTP/2 and HTTP/1.1 by ALPN, TLS 1.2 and 1.3, ring's safe defaults.
    pub config: Arc<ServerConfig>,
}

impl TlsSource {
    /// Load (or make, for a self-signed source) the certificate and key.
    pub fn load(&self) -> Result<Tls, ServeError> {
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
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| ServeError::Tls(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(chain, private)
            .map_err(|e| {
                ServeError::Tls(format!(
                    "{} and {} do not make a usable certificate: {e}",
                    cert.display(),
                    key.display()
                ))
            })?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Tls {
            cert_path: cert,
            config: Arc::new(config),
        })
    }
}

/// `dir/cert.pem` and `dir/key.pem`, made now if they do not exist yet.
fn self_signed(dir: &Path, names: &[String]) -> Result<(PathBuf, PathBuf), ServeError> {
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    if cert.exists() && key.exists() {
        return Ok((cert, key));
    }
    let io = |path: &Path, e: std::io::Error| ServeError::Tls(format!("{}: {e}", path.display()));
    std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    let made = rcgen::generate_simple_self_signed(names.to_vec())
        .map_err(|e| ServeError::Tls(format!("the self-signed certificate: {e}")))?;
    write_private(&key, made.signing_key.serialize_pem().as_bytes()).map_err(|e| io(&key, e))?;
    std::fs::write(&cert, made.cert.pem()).map_err(|e| io(&cert, e))?;
    Ok((cert, key))
}

/// Write a file only its owner can read (created so, never widened afterwards).
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}
