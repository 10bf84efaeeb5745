//! The OpenID Connect relying party (through `openidconnect`, over latchkey's own
//! outbound HTTPS): discovery (cached an hour per provider), the authorization request
//! (code flow, PKCE S256, `state`, `nonce`), the code exchange, and the ID token's checks:
//! signature with an allow-list of asymmetric algorithms (never `none`, never an HMAC
//! keyed with a public key), `iss`, `aud`, `azp`, `exp` and `iat` within a minute of skew
//! (and `iat` no older than ten minutes), and the `nonce`. A key id the cached key set
//! does not hold refetches the set once (at most every 30 seconds).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64ct::{Base64UrlUnpadded, Encoding};
use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreClientAuthMethod, CoreIdToken, CoreJsonWebKeySet,
    CoreJwsSigningAlgorithm, CoreProviderMetadata,
};
use openidconnect::{
    AuthType, AuthorizationCode, ClaimsVerificationError, ClientId, ClientSecret, CsrfToken,
    EndpointMaybeSet, EndpointNotSet, EndpointSet, HttpRequest, HttpResponse, IssuerUrl, Nonce,
    PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope, SignatureVerificationError,
    TokenResponse,
};
use serde_json::Value;

use crate::app::{ExternalLogin, SsoFlow, SsoProvider};
use crate::domain::federation::{OidcSettings, Protocol};
use crate::domain::id::IdentityProviderId;

type Client = CoreClient<
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
    EndpointMaybeSet,
>;

/// How long discovery is trusted.
const METADATA_TTL: Duration = Duration::from_secs(3600);
/// The least time between two key set refetches of one provider.
const JWKS_REFETCH: Duration = Duration::from_secs(30);
/// Clock skew allowed on `exp` and `iat`.
const SKEW_SECS: i64 = 60;
/// The oldest `iat` accepted.
const MAX_AGE_SECS: i64 = 600;

/// ID token signature algorithms accepted: asymmetric only.
const ALGORITHMS: [CoreJwsSigningAlgorithm; 9] = [
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha384,
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha512,
    CoreJwsSigningAlgorithm::RsaSsaPssSha256,
    CoreJwsSigningAlgorithm::RsaSsaPssSha384,
    CoreJwsSigningAlgorithm::RsaSsaPssSha512,
    CoreJwsSigningAlgorithm::EcdsaP256Sha256,
    CoreJwsSigningAlgorithm::EcdsaP384Sha384,
    CoreJwsSigningAlgorithm::EdDsa,
];

/// An outbound request under way, as `openidconnect` takes it.
type HttpFuture = std::pin::Pin<Box<dyn Future<Output = Result<HttpResponse, HttpFailure>> + Send>>;

/// A failure of the outbound request, as `openidconnect` takes it.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(super) struct HttpFailure(pub String);

struct Cached {
    issuer: String,
    metadata: CoreProviderMetadata,
    fetched: Instant,
    /// When an unknown key id last made the key set be fetched again.
    jwks_refetched: Option<Instant>,
}

/// The relying party: its discovery cache.
#[derive(Default)]
pub(super) struct Oidc {
    cache: Mutex<HashMap<IdentityProviderId, Cached>>,
}

impl std::fmt::Debug for Oidc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Oidc")
    }
}

/// A request to send a browser to.
pub(super) struct Authorization {
    pub url: String,
    pub state: String,
    pub nonce: String,
    pub pkce_verifier: String,
}

fn settings(sso: &SsoProvider) -> Result<&OidcSettings, String> {
    match &sso.provider.protocol {
        Protocol::Oidc(oidc) => Ok(oidc),
        other => Err(format!(
            "{} is not an OpenID Connect provider",
            other.kind()
        )),
    }
}

/// The outbound client for a provider: its own CA certificates or the public roots.
pub(super) fn http(
    trusted_ca_pem: Option<&str>,
    allow_private: bool,
) -> Result<impl Fn(HttpRequest) -> HttpFuture, String> {
    let roots =
        crate::app::roots_from_pem("trusted_ca_pem", trusted_ca_pem).map_err(|e| e.to_string())?;
    Ok(move |request: HttpRequest| {
        let roots = roots.clone();
        Box::pin(async move {
            crate::api::outbound::fetch(request, roots, allow_private)
                .await
                .map_err(HttpFailure)
        }) as HttpFuture
    })
}

fn client(
    metadata: &CoreProviderMetadata,
    oidc: &OidcSettings,
    secret: Option<&str>,
    redirect_uri: &str,
) -> Result<Client, String> {
    let token = metadata
        .token_endpoint()
        .cloned()
        .ok_or("the provider's discovery names no token endpoint")?;
    // client_secret_basic unless the provider takes only client_secret_post.
    let auth = match metadata.token_endpoint_auth_methods_supported() {
        Some(methods)
            if !methods.contains(&CoreClientAuthMethod::ClientSecretBasic)
                && methods.contains(&CoreClientAuthMethod::ClientSecretPost) =>
        {
            AuthType::RequestBody
        }
        _ => AuthType::BasicAuth,
    };
    Ok(CoreClient::from_provider_metadata(
        metadata.clone(),
        ClientId::new(oidc.client_id.clone()),
        secret.map(|s| ClientSecret::new(s.to_owned())),
    )
    .set_redirect_uri(RedirectUrl::new(redirect_uri.to_owned()).map_err(|e| e.to_string())?)
    .set_token_uri(token)
    .set_auth_type(auth))
}

impl Oidc {
    /// The provider's discovery document (with its key set), cached.
    async fn metadata(
        &self,
        id: IdentityProviderId,
        oidc: &OidcSettings,
        allow_private: bool,
    ) -> Result<CoreProviderMetadata, String> {
        if let Ok(cache) = self.cache.lock()
            && let Some(found) = cache.get(&id)
            && found.issuer == oidc.issuer
            && found.fetched.elapsed() < METADATA_TTL
        {
            return Ok(found.metadata.clone());
        }
        let issuer = IssuerUrl::new(oidc.issuer.clone()).map_err(|e| e.to_string())?;
        let http = http(oidc.trusted_ca_pem.as_deref(), allow_private)?;
        let metadata = CoreProviderMetadata::discover_async(issuer, &http)
            .await
            .map_err(|e| format!("discovery at {} failed: {}", oidc.issuer, describe(&e)))?;
        if let Ok(mut cache) = self.cache.lock() {
            cache.insert(
                id,
                Cached {
                    issuer: oidc.issuer.clone(),
                    metadata: metadata.clone(),
                    fetched: Instant::now(),
                    jwks_refetched: None,
                },
            );
        }
        Ok(metadata)
    }

    /// The key set again, when the cached one lacks a key the provider used (a rotation);
    /// `None` when it was refetched less than 30 seconds ago.
    async fn refetch_keys(
        &self,
        id: IdentityProviderId,
        oidc: &OidcSettings,
        metadata: &CoreProviderMetadata,
        allow_private: bool,
    ) -> Result<Option<CoreProviderMetadata>, String> {
        let recent = self
            .cache
            .lock()
            .ok()
            .and_then(|cache| {
                cache
                    .get(&id)
                    .and_then(|c| c.jwks_refetched)
                    .map(|at| at.elapsed() < JWKS_REFETCH)
            })
            .unwrap_or(false);
        if recent {
            return Ok(None);
        }
        let http = http(oidc.trusted_ca_pem.as_deref(), allow_private)?;
        let keys = CoreJsonWebKeySet::fetch_async(metadata.jwks_uri(), &http)
            .await
            .map_err(|e| format!("the provider's keys could not be fetched: {}", describe(&e)))?;
        let updated = metadata.clone().set_jwks(keys);
        if let Ok(mut cache) = self.cache.lock() {
            cache.insert(
                id,
                Cached {
                    issuer: oidc.issuer.clone(),
                    metadata: updated.clone(),
                    fetched: Instant::now(),
                    jwks_refetched: Some(Instant::now()),
                },
            );
        }
        Ok(Some(updated))
    }

    /// The authorization request for `sso`, answering to `redirect_uri`.
    pub(super) async fn begin(
        &self,
        sso: &SsoProvider,
        redirect_uri: &str,
        allow_private: bool,
    ) -> Result<Authorization, String> {
        let oidc = settings(sso)?;
        let metadata = self.metadata(sso.provider.id, oidc, allow_private).await?;
        let client = client(
            &metadata,
            oidc,
            sso.client_secret.as_deref().map(String::as_str),
            redirect_uri,
        )?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request = client
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                CsrfToken::new_random,
                Nonce::new_random,
            )
            .set_pkce_challenge(challenge);
        for scope in &oidc.scopes {
            request = request.add_scope(Scope::new(scope.clone()));
        }
        let (url, state, nonce) = request.url();
        Ok(Authorization {
            url: url.to_string(),
            state: state.into_secret(),
            nonce: nonce.secret().clone(),
            pkce_verifier: verifier.into_secret(),
        })
    }

    /// The person the provider's `code` stands for, every check of the ID token passed.
    pub(super) async fn finish(
        &self,
        sso: &SsoProvider,
        flow: &SsoFlow,
        code: &str,
        allow_private: bool,
    ) -> Result<ExternalLogin, String> {
        let oidc = settings(sso)?;
        let id = sso.provider.id;
        let metadata = self.metadata(id, oidc, allow_private).await?;
        let secret = sso.client_secret.as_deref().map(String::as_str);
        let mut client = client(&metadata, oidc, secret, &flow.redirect_uri)?;
        let http = http(oidc.trusted_ca_pem.as_deref(), allow_private)?;
        let answer = client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .set_pkce_verifier(PkceCodeVerifier::new(flow.pkce_verifier.clone()))
            .request_async(&http)
            .await
            .map_err(|e| format!("the code exchange failed: {}", describe(&e)))?;
        let token = answer
            .id_token()
            .ok_or("the provider answered without an ID token")?;
        let nonce = Nonce::new(flow.nonce.clone());
        let checked = match verify(&client, token, &nonce, &oidc.client_id) {
            Err(Unverified::Claims(ClaimsVerificationError::SignatureVerification(
                SignatureVerificationError::NoMatchingKey,
            ))) => match self
                .refetch_keys(id, oidc, &metadata, allow_private)
                .await?
            {
                Some(updated) => {
                    client = self::client(&updated, oidc, secret, &flow.redirect_uri)?;
                    verify(&client, token, &nonce, &oidc.client_id)
                }
                None => Err(Unverified::Claims(
                    ClaimsVerificationError::SignatureVerification(
                        SignatureVerificationError::NoMatchingKey,
                    ),
                )),
            },
            other => other,
        };
        let subject = checked.map_err(|e| format!("the ID token was refused: {e}"))?;
        // Every check passed: read the configured claims from the same payload.
        let payload = token
            .to_string()
            .split('.')
            .nth(1)
            .and_then(|p| Base64UrlUnpadded::decode_vec(p).ok())
            .and_then(|bytes| serde_json::from_slice::<serde_json::Map<String, Value>>(&bytes).ok())
            .ok_or("the ID token's claims do not read")?;
        Ok(external_login(subject, &payload, oidc))
    }
}

/// Why an ID token was refused.
#[derive(Debug)]
enum Unverified {
    Claims(ClaimsVerificationError),
    Other(String),
}

impl std::fmt::Display for Unverified {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unverified::Claims(e) => f.write_str(&describe(e)),
            Unverified::Other(e) => f.write_str(e),
        }
    }
}

/// Check `token` with `client`'s keys: the library's checks (signature, algorithm,
/// `iss`, `aud`, `exp`, `nonce`) with a minute of skew, then `iat` and `azp`. The
/// subject.
fn verify(
    client: &Client,
    token: &CoreIdToken,
    nonce: &Nonce,
    client_id: &str,
) -> Result<String, Unverified> {
    let verifier = client
        .id_token_verifier()
        .set_allowed_algs(ALGORITHMS)
        .set_time_fn(|| chrono::Utc::now() - chrono::Duration::seconds(SKEW_SECS))
        .set_issue_time_verifier_fn(|iat| {
            let now = chrono::Utc::now();
            if iat > now + chrono::Duration::seconds(SKEW_SECS) {
                Err(format!("it was issued in the future ({iat})"))
            } else if iat < now - chrono::Duration::seconds(MAX_AGE_SECS) {
                Err(format!("it was issued more than ten minutes ago ({iat})"))
            } else {
                Ok(())
            }
        });
    let claims = token.claims(&verifier, nonce).map_err(Unverified::Claims)?;
    // OIDC Core 3.1.3.7: with several audiences, `azp` must be present; when present it
    // must be this client.
    let several = claims.audiences().len() > 1;
    match claims.authorized_party() {
        Some(azp) if azp.as_str() != client_id => {
            return Err(Unverified::Other(format!(
                "its azp is {}, not this client",
                azp.as_str()
            )));
        }
        None if several => {
            return Err(Unverified::Other(
                "it names several audiences and no azp".into(),
            ));
        }
        _ => {}
    }
    Ok(claims.subject().as_str().to_owned())
}

/// The configured claims of a verified payload.
fn external_login(
    subject: String,
    payload: &serde_json::Map<String, Value>,
    oidc: &OidcSettings,
) -> ExternalLogin {
    let text = |name: &str| payload.get(name).and_then(Value::as_str).map(str::to_owned);
    let list = |name: &str| -> Vec<String> {
        match payload.get(name) {
            Some(Value::Array(values)) => values
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
            Some(Value::String(one)) => vec![one.clone()],
            _ => Vec::new(),
        }
    };
    let email_verified = match payload.get("email_verified") {
        Some(Value::Bool(verified)) => *verified,
        Some(Value::String(text)) => text == "true",
        _ => false,
    };
    ExternalLogin {
        subject,
        email: text(&oidc.claims.email),
        email_verified,
        name: text(&oidc.claims.name),
        groups: list(&oidc.claims.groups),
        methods: list("amr"),
    }
}

/// An error and its causes, on one line.
pub(super) fn describe(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
