//! `latchkey serve`: the API on HTTPS (hyper + rustls, HTTP/1.1 and HTTP/2 by ALPN).
//!
//! One accept loop; each connection is its own task, its TLS handshake bounded in time,
//! its request headers too (a slow client cannot hold a connection open), and watched for
//! graceful shutdown: on SIGTERM or ctrl-c the listener closes, in-flight requests finish
//! (up to a grace period), coalesced `last_used_at` uses are flushed, and the process
//! exits. SIGHUP reloads the policies folder and the TLS certificate. Event destinations
//! are fed by their own task (`api::delivery`).

#[cfg(unix)]
pub mod admin;
mod body;
pub mod config;
pub mod tls;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::api::delivery::Deliverer;
use crate::api::{Api, PeerAddr};
use crate::app::{AppError, Config, Initialized, Latchkey};
pub use tls::{Tls, TlsSource};

/// How long in-flight requests may take to finish once shutdown begins.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);
/// How often coalesced `last_used_at` uses are written.
const FLUSH_EVERY: Duration = Duration::from_secs(1);

/// Why the server could not start or run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// The data directory, database or policies could not be opened.
    #[error(transparent)]
    App(#[from] AppError),
    /// The certificate or key could not be made or used.
    #[error("TLS: {0}")]
    Tls(String),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Any other I/O failure (signals, the runtime).
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Everything `serve` needs, validated.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// The data directory (created and bootstrapped if empty).
    pub data_dir: PathBuf,
    /// The policies folder.
    pub policies: PathBuf,
    /// Where to listen.
    pub listen: SocketAddr,
    /// Where the certificate comes from.
    pub tls: TlsSource,
    /// The base of every `uri` (`https://host:port`); without it, each request's host.
    pub public_url: Option<String>,
    /// SMTP URL and sender of invitation mail, if configured.
    pub smtp: Option<(String, String)>,
    /// The argon2id cost of new password hashes.
    pub password_cost: crate::app::PasswordCost,
    /// Password hashes computed at once.
    pub password_workers: usize,
    /// How long a client has for the TLS handshake, each request's head (and the wait
    /// for it on a kept-alive connection), and each request's body.
    pub client_timeout: Duration,
    /// The account a fresh data directory is bootstrapped with.
    pub bootstrap_account: String,
    /// Its first administrator's email.
    pub bootstrap_admin_email: String,
    /// Event destinations may be on non-public addresses.
    pub allow_private_destinations: bool,
    /// redb's page cache, in bytes.
    pub db_cache_bytes: usize,
}

/// What the server reports once it listens.
#[derive(Debug)]
pub struct Started {
    /// The bound address (the real port when 0 was asked for).
    pub addr: SocketAddr,
    /// The certificate a client can trust.
    pub cert_path: PathBuf,
    /// The account and key made on a fresh data directory, shown this once.
    pub bootstrapped: Option<Initialized>,
    /// Where links to this server start: the public URL, else `https://` and the bound
    /// address.
    pub base_url: String,
}

impl Started {
    /// The first administrator's one-time setup link, when this start made the account.
    pub fn setup_url(&self) -> Option<String> {
        self.bootstrapped.as_ref().map(|made| {
            format!(
                "{}/password_reset?token={}",
                self.base_url,
                made.setup_link.expose()
            )
        })
    }
}

/// Run the server until SIGTERM or ctrl-c; `on_start` is told where it listens.
pub fn run(config: ServeConfig, on_start: impl FnOnce(&Started)) -> Result<(), ServeError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("latchkey")
        .build()?;
    runtime.block_on(serve(config, on_start))
}

async fn serve(config: ServeConfig, on_start: impl FnOnce(&Started)) -> Result<(), ServeError> {
    crate::policy::builtin::prepare(&config.data_dir, &config.policies).map_err(|e| {
        AppError::DataDir(format!(
            "the built-in policies could not be installed in {}: {e}",
            config.policies.display()
        ))
    })?;
    let open = Config {
        password_cost: config.password_cost,
        password_threads: config.password_workers,
        allow_private_destinations: config.allow_private_destinations,
        db_cache_bytes: config.db_cache_bytes,
        ..Config::new(&config.data_dir)
            .with_policies(&config.policies)
            .creating()
    };
    // Opened on a thread of its own that ends once the index is loaded: loading reads the
    // whole credential table through redb's bounded cache, and the allocator hands the
    // pages that churn leaves behind back to the system when their thread ends, rather
    // than keeping them for a thread that would never allocate again (about 150 MB at a
    // million credentials).
    let lk = Arc::new(
        std::thread::scope(|scope| {
            std::thread::Builder::new()
                .name("latchkey-open".into())
                .spawn_scoped(scope, || Latchkey::open(open))
                .map(|opening| opening.join())
        })?
        .map_err(|_| AppError::DataDir("opening the data directory panicked".into()))??,
    );
    // The set it starts with goes in the appliance trail beside the one recorded last. A
    // trail that cannot be written (a full disk) does not keep the appliance down: the
    // set is in the log either way.
    if let Err(err) = lk.record_policy_start() {
        tracing::error!(error = %err, "the starting policy set could not be recorded in the appliance trail");
    }
    let bootstrapped = if lk.is_empty()? {
        Some(lk.init(&config.bootstrap_account, &config.bootstrap_admin_email)?)
    } else {
        None
    };
    let tls = config.tls.load()?;
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| ServeError::Bind {
            addr: config.listen,
            source,
        })?;
    let addr = listener.local_addr()?;
    // Signal handlers are installed before the server says it listens: a SIGTERM that
    // follows the announcement at once must shut down gracefully, not kill the process.
    let shutdown = shutdown_signal()?;
    #[cfg(unix)]
    let hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    // The operator's socket answers before the server says it is up.
    #[cfg(unix)]
    let admin = admin::listen(&config.data_dir, Arc::clone(&lk))?;
    on_start(&Started {
        addr,
        cert_path: tls.cert_path.clone(),
        bootstrapped,
        base_url: config.public_url.clone().map_or_else(
            || format!("https://{addr}"),
            |url| url.trim_end_matches('/').to_owned(),
        ),
    });
    tracing::info!(%addr, "listening");

    let mut api = Api::new(Arc::clone(&lk), config.public_url.clone())
        .with_client_timeout(config.client_timeout)
        .with_link_base(&format!("https://{addr}"));
    if let Some((url, from)) = &config.smtp {
        api = api.with_mailer(crate::api::mail::Mailer::new(url, from).map_err(AppError::DataDir)?);
    }
    let api = Arc::new(api);
    let web = Arc::new(crate::web::Web::new(Arc::clone(&api)));
    let scim = Arc::new(crate::scim::Scim::new(Arc::clone(&api)));
    let handshake_timeout = config.client_timeout;
    let acceptor = TlsAcceptor::from(Arc::clone(&tls.config));
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(config.client_timeout)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(Duration::from_secs(30)))
        .keep_alive_timeout(Duration::from_secs(20))
        .max_concurrent_streams(256);
    let builder = Arc::new(builder);
    let graceful = GracefulShutdown::new();
    let flusher = tokio::spawn(flush_usage(Arc::clone(&api)));
    let (stop_delivery, delivery_stopped) = tokio::sync::watch::channel(false);
    let delivery = tokio::spawn(
        Deliverer::new(
            Arc::clone(&lk),
            &config
                .public_url
                .clone()
                .unwrap_or_else(|| format!("https://{addr}")),
            config.allow_private_destinations,
        )
        .run(delivery_stopped),
    );
    #[cfg(unix)]
    let reloader = tokio::spawn(reload_on_hangup(
        Arc::clone(&lk),
        Arc::clone(&tls.certificate),
        hangups,
    ));
    tokio::pin!(shutdown);

    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of descriptors and the like: wait rather than spin.
                    tracing::warn!(error = %err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let acceptor = acceptor.clone();
        let builder = Arc::clone(&builder);
        let api = Arc::clone(&api);
        let web = Arc::clone(&web);
        let scim = Arc::clone(&scim);
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let tls = match tokio::time::timeout(handshake_timeout, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(err)) => {
                    tracing::debug!(%peer, error = %err, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "TLS handshake timed out");
                    return;
                }
            };
            let service = service_fn(move |request: hyper::Request<_>| {
                let (mut request, body_read) = body::watch(request);
                request.extensions_mut().insert(PeerAddr(peer));
                let (api, web, scim) = (Arc::clone(&api), Arc::clone(&web), Arc::clone(&scim));
                async move {
                    // The dashboard's pages, the SCIM endpoint, or the API.
                    let dashboard = crate::web::Web::wants(
                        request.method(),
                        request.uri().path(),
                        request.headers(),
                    );
                    // The dashboard's and SCIM's futures are boxed, so that every
                    // request does not move (or hyper store) one the size of theirs.
                    let response = if dashboard {
                        Box::pin(web.handle(request, Some(peer.ip()))).await
                    } else if crate::scim::Scim::wants(request.uri().path()) {
                        Box::pin(scim.handle(request)).await
                    } else {
                        api.handle(request).await
                    };
                    Ok::<_, Infallible>(body_read.answer(response))
                }
            });
            let connection = builder
                .serve_connection(TokioIo::new(tls), service)
                .into_owned();
            if let Err(err) = watcher.watch(connection).await {
                tracing::debug!(%peer, error = %err, "connection ended with an error");
            }
        });
    }

    tracing::info!("shutting down: finishing in-flight requests");
    drop(listener);
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("some connections did not finish within the grace period");
    }
    // Batches under way finish (bounded), so a restart does not send them twice.
    let _ = stop_delivery.send(true);
    if let Err(err) = delivery.await {
        tracing::error!(error = %err, "event delivery did not stop cleanly");
    }
    #[cfg(unix)]
    reloader.abort();
    #[cfg(unix)]
    drop(admin);
    flusher.abort();
    let last = Arc::clone(&api);
    match tokio::task::spawn_blocking(move || flush_once(&last)).await {
        Ok(Ok(())) => {}
        Ok(Err(err)) => tracing::error!(error = %err, "final flush failed"),
        Err(err) => tracing::error!(error = %err, "final flush did not run"),
    }
    tracing::info!("stopped");
    Ok(())
}

/// Write what is counted in memory: `last_used_at` uses, rate limiters' counts and
/// warn-only IP misses; while
/// the storage fails, try a write so readiness recovers once the cause clears. What
/// cannot be written stays counted for the next flush.
fn flush_once(api: &Api) -> Result<(), AppError> {
    api.latchkey().probe_storage()?;
    api.latchkey().flush_usage()?;
    api.latchkey().flush_limits()?;
    api.flush_warnings()?;
    Ok(())
}

/// Flush counted uses and warnings once a second, each kind in one transaction.
async fn flush_usage(api: Arc<Api>) {
    let mut tick = tokio::time::interval(FLUSH_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let api = Arc::clone(&api);
        match tokio::task::spawn_blocking(move || flush_once(&api)).await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => tracing::error!(error = %err, "flush failed"),
            Err(err) => tracing::error!(error = %err, "flush did not run"),
        }
    }
}

/// SIGHUP: reload the policies folder and the TLS certificate, each on its own: one that
/// does not load is reported and the current one stays.
#[cfg(unix)]
async fn reload_on_hangup(
    lk: Arc<Latchkey>,
    certificate: Arc<tls::Certificate>,
    mut hangups: tokio::signal::unix::Signal,
) {
    while hangups.recv().await.is_some() {
        let lk = Arc::clone(&lk);
        let certificate = Arc::clone(&certificate);
        let reloaded = tokio::task::spawn_blocking(move || {
            // Logged and recorded in the appliance trail either way.
            (lk.reload_policies("signal"), certificate.reload())
        })
        .await;
        let Ok((_policies, certificate)) = reloaded else {
            tracing::error!("the reload did not run");
            continue;
        };
        match certificate {
            Ok(()) => tracing::info!("TLS certificate reloaded: new connections get it"),
            Err(err) => {
                tracing::error!(error = %err, "TLS certificate not reloaded; the current one stays");
            }
        }
    }
}

/// A future that resolves on ctrl-c or SIGTERM; the handlers are installed now.
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    #[cfg(unix)]
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    #[cfg(unix)]
    let mut interrupt = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
    Ok(async move {
        #[cfg(unix)]
        tokio::select! {
            _ = terminate.recv() => {}
            _ = interrupt.recv() => {}
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
    })
}
