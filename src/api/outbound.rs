//! The appliance's own outbound HTTPS: event destinations and identity providers. One
//! gate for every connection latchkey makes: TLS only (rustls, ring), to public addresses
//! only unless the operator allows private ones (a name is checked for each address it
//! resolves to, at each connection, so DNS cannot move it behind the check), trusting the
//! target's own CA certificates or the public web roots, never following redirects, with a
//! deadline and a bound on what is read.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::domain::destination::{self, Endpoint};

/// How long a connection may take to open.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a whole request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// The most of an answer's body that is read.
const MAX_ANSWER: usize = 1 << 20;

/// A TLS connection to `endpoint` (only to public addresses unless `allow_private`),
/// trusting `roots`, offering `alpn` when not empty.
pub(crate) async fn connect(
    endpoint: &Endpoint,
    roots: rustls::RootCertStore,
    alpn: &[u8],
    allow_private: bool,
) -> Result<TlsStream<TcpStream>, String> {
    let addresses: Vec<SocketAddr> = match endpoint.ip() {
        Some(ip) => vec![SocketAddr::new(ip, endpoint.port)],
        None => tokio::net::lookup_host((endpoint.host.as_str(), endpoint.port))
            .await
            .map_err(|e| format!("{} does not resolve: {e}", endpoint.host))?
            .collect(),
    };
    let allowed: Vec<SocketAddr> = addresses
        .iter()
        .copied()
        .filter(|a| allow_private || destination::is_public(a.ip()))
        .collect();
    if allowed.is_empty() {
        let list: Vec<String> = addresses.iter().map(|a| a.ip().to_string()).collect();
        return Err(format!(
            "{} resolves only to addresses that are not public ({}); the operator can allow them with --allow-private-destinations",
            endpoint.host,
            list.join(", ")
        ));
    }
    let mut last = String::from("no address to connect to");
    let mut tcp = None;
    for address in allowed {
        match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(address)).await {
            Ok(Ok(stream)) => {
                tcp = Some(stream);
                break;
            }
            Ok(Err(err)) => last = format!("cannot connect to {address}: {err}"),
            Err(_) => last = format!("cannot connect to {address}: timed out"),
        }
    }
    let tcp = tcp.ok_or(last)?;
    let _ = tcp.set_nodelay(true);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup failed: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    if !alpn.is_empty() {
        config.alpn_protocols = vec![alpn.to_vec()];
    }
    let name = rustls::pki_types::ServerName::try_from(endpoint.host.clone())
        .map_err(|e| format!("{} is not a TLS server name: {e}", endpoint.host))?;
    TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .map_err(|e| format!("TLS with {} failed: {e}", endpoint.host))
}

/// The `Host` header for `endpoint`.
pub(crate) fn host_header(endpoint: &Endpoint) -> String {
    match (endpoint.ip(), endpoint.port) {
        (Some(std::net::IpAddr::V6(v6)), 443) => format!("[{v6}]"),
        (Some(std::net::IpAddr::V6(v6)), port) => format!("[{v6}]:{port}"),
        (_, 443) => endpoint.host.clone(),
        (_, port) => format!("{}:{port}", endpoint.host),
    }
}

/// One HTTPS request to an absolute `https://` URI, over HTTP/1.1: the answer as it
/// came (a redirect is an answer, not followed), its body at most 1 MiB, all within 15 s.
pub(crate) async fn fetch(
    request: hyper::http::Request<Vec<u8>>,
    roots: rustls::RootCertStore,
    allow_private: bool,
) -> Result<hyper::http::Response<Vec<u8>>, String> {
    tokio::time::timeout(REQUEST_TIMEOUT, fetch_now(request, roots, allow_private))
        .await
        .map_err(|_| format!("no answer within {} s", REQUEST_TIMEOUT.as_secs()))?
}

async fn fetch_now(
    request: hyper::http::Request<Vec<u8>>,
    roots: rustls::RootCertStore,
    allow_private: bool,
) -> Result<hyper::http::Response<Vec<u8>>, String> {
    let url = request.uri().to_string();
    let (endpoint, path) = destination::parse_https_url(&url).map_err(|e| e.to_string())?;
    let tls = connect(&endpoint, roots, b"http/1.1", allow_private).await?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|e| format!("HTTP handshake failed: {e}"))?;
    let connection = tokio::spawn(connection);
    let (mut parts, body) = request.into_parts();
    parts.uri = path
        .parse()
        .map_err(|e| format!("{url} has no usable path: {e}"))?;
    parts.headers.insert(
        hyper::header::HOST,
        host_header(&endpoint)
            .parse()
            .map_err(|e| format!("{url} has no usable host: {e}"))?,
    );
    parts.headers.insert(
        hyper::header::USER_AGENT,
        hyper::header::HeaderValue::from_static(concat!("latchkey/", env!("CARGO_PKG_VERSION"))),
    );
    let answer = sender
        .send_request(hyper::Request::from_parts(
            parts,
            Full::new(Bytes::from(body)),
        ))
        .await
        .map_err(|e| format!("the request to {url} failed: {e}"));
    let answer = match answer {
        Ok(answer) => answer,
        Err(err) => {
            connection.abort();
            return Err(err);
        }
    };
    let (parts, body) = answer.into_parts();
    let body = Limited::new(body, MAX_ANSWER)
        .collect()
        .await
        .map_err(|e| format!("the answer of {url} could not be read (over 1 MiB?): {e}"))?
        .to_bytes();
    connection.abort();
    Ok(hyper::http::Response::from_parts(parts, body.to_vec()))
}
