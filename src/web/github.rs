//! GitHub as an identity provider: its OAuth 2.0 web flow (with `state` and PKCE S256)
//! through `oauth2` over latchkey's own outbound HTTPS, then its REST API: `GET /user`
//! for the numeric id (the subject: a login can be renamed, the id cannot) and the name,
//! and `GET /user/emails` for the primary address, taken only when GitHub says it is
//! verified. The URLs are the provider's settings, so GitHub Enterprise Server (or a
//! stand-in that follows GitHub's published API) works the same.

use oauth2::basic::BasicClient;
use oauth2::{
    AuthType, AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, PkceCodeChallenge,
    PkceCodeVerifier, RedirectUrl, RequestTokenError, Scope, TokenResponse, TokenUrl,
};
use serde::Deserialize;

use super::oidc::{Authorization, HttpFailure, describe, http};
use crate::app::{ExternalLogin, SsoFlow, SsoProvider};
use crate::domain::federation::{GithubSettings, Protocol};

fn settings(sso: &SsoProvider) -> Result<&GithubSettings, String> {
    match &sso.provider.protocol {
        Protocol::Github(github) => Ok(github),
        other => Err(format!("{} is not a GitHub provider", other.kind())),
    }
}

type Client = BasicClient<
    oauth2::EndpointSet,
    oauth2::EndpointNotSet,
    oauth2::EndpointNotSet,
    oauth2::EndpointNotSet,
    oauth2::EndpointSet,
>;

fn client(github: &GithubSettings, secret: &str, redirect_uri: &str) -> Result<Client, String> {
    let url = |path: &str| format!("{}{path}", github.web_url);
    Ok(BasicClient::new(ClientId::new(github.client_id.clone()))
        .set_client_secret(ClientSecret::new(secret.to_owned()))
        .set_auth_uri(AuthUrl::new(url("/login/oauth/authorize")).map_err(|e| e.to_string())?)
        .set_token_uri(TokenUrl::new(url("/login/oauth/access_token")).map_err(|e| e.to_string())?)
        .set_redirect_uri(RedirectUrl::new(redirect_uri.to_owned()).map_err(|e| e.to_string())?)
        // GitHub takes the client's credentials in the body.
        .set_auth_type(AuthType::RequestBody))
}

fn secret(sso: &SsoProvider) -> Result<&str, String> {
    sso.client_secret
        .as_deref()
        .map(String::as_str)
        .ok_or_else(|| "the provider has no client secret".to_owned())
}

/// The authorization request for `sso`, answering to `redirect_uri`.
pub(super) fn begin(sso: &SsoProvider, redirect_uri: &str) -> Result<Authorization, String> {
    let github = settings(sso)?;
    let client = client(github, secret(sso)?, redirect_uri)?;
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, state) = client
        .authorize_url(CsrfToken::new_random)
        .add_scope(Scope::new("read:user".into()))
        .add_scope(Scope::new("user:email".into()))
        .set_pkce_challenge(challenge)
        .url();
    Ok(Authorization {
        url: url.to_string(),
        state: state.into_secret(),
        nonce: String::new(),
        pkce_verifier: verifier.into_secret(),
    })
}

#[derive(Deserialize)]
struct GithubUser {
    id: u64,
    login: String,
    name: Option<String>,
}

#[derive(Deserialize)]
struct GithubEmail {
    email: String,
    primary: bool,
    verified: bool,
}

#[derive(Deserialize)]
struct GithubError {
    error: String,
    error_description: Option<String>,
}

/// The person GitHub's `code` stands for.
pub(super) async fn finish(
    sso: &SsoProvider,
    flow: &SsoFlow,
    code: &str,
    allow_private: bool,
) -> Result<ExternalLogin, String> {
    let github = settings(sso)?;
    let client = client(github, secret(sso)?, &flow.redirect_uri)?;
    let http = http(github.trusted_ca_pem.as_deref(), allow_private)?;
    let answer = client
        .exchange_code(AuthorizationCode::new(code.to_owned()))
        .set_pkce_verifier(PkceCodeVerifier::new(flow.pkce_verifier.clone()))
        .request_async(&http)
        .await
        .map_err(|e| match &e {
            // GitHub answers some errors with 200 and an `error` field.
            RequestTokenError::Parse(_, body) => serde_json::from_slice::<GithubError>(body)
                .map_or_else(
                    |_| format!("the code exchange failed: {}", describe(&e)),
                    |refused| {
                        format!(
                            "GitHub refused the code: {} {}",
                            refused.error,
                            refused.error_description.unwrap_or_default()
                        )
                    },
                ),
            _ => format!("the code exchange failed: {}", describe(&e)),
        })?;
    let token = answer.access_token().secret().clone();
    let get = |path: &'static str| {
        let url = format!("{}{path}", github.api_url);
        let token = token.clone();
        let http = &http;
        async move {
            let request = hyper::http::Request::get(&url)
                .header("authorization", format!("Bearer {token}"))
                .header("accept", "application/vnd.github+json")
                .header("x-github-api-version", "2022-11-28")
                .body(Vec::new())
                .map_err(|e| e.to_string())?;
            let answer = http(request).await.map_err(|HttpFailure(e)| e)?;
            if !answer.status().is_success() {
                return Err(format!("GitHub's {path} answered {}", answer.status()));
            }
            Ok(answer.into_body())
        }
    };
    let user: GithubUser = serde_json::from_slice(&get("/user").await?)
        .map_err(|e| format!("GitHub's /user does not read: {e}"))?;
    let emails: Vec<GithubEmail> = serde_json::from_slice(&get("/user/emails").await?)
        .map_err(|e| format!("GitHub's /user/emails does not read: {e}"))?;
    // Only the primary address, and only when GitHub has verified it.
    let email = emails
        .into_iter()
        .find(|e| e.primary && e.verified)
        .map(|e| e.email);
    Ok(ExternalLogin {
        subject: user.id.to_string(),
        email_verified: email.is_some(),
        email,
        name: user.name.or(Some(user.login)),
        groups: Vec::new(),
        methods: Vec::new(),
    })
}
