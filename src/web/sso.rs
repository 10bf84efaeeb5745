//! Single sign-on in the browser: `GET /sso/{id}/login` sends the browser to the
//! provider, `GET /sso/{id}/callback` takes its answer (OIDC), and `GET /sso/discover`
//! names the providers for an email's domain. A flow is bound to the browser that began
//! it by a sealed, ten-minute `latchkey_sso` cookie holding its `state`, nonce and PKCE
//! verifier; the callback is cross-site by nature, so it is exempt from the origin check:
//! the state, the code exchange and the ID token's checks authenticate it.

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{self, HeaderValue};
use hyper::{Response, StatusCode};
use subtle::ConstantTimeEq;

use super::{AppOrApi, Web, blocking, cookie, page, pages, query_value, redirect};
use crate::api::session::set_cookie;
use crate::app::{FlowPurpose, LoginStep, SsoFlow};
use crate::domain::federation::Protocol;
use crate::domain::id::IdentityProviderId;
use crate::domain::session::SESSION_LIFETIME_MS;

/// The flow's cookie.
const FLOW_COOKIE: &str = "latchkey_sso";

type Answer = super::Answer;

/// Where a flow may return: a dashboard path (never another origin).
fn return_to(query: Option<&str>) -> String {
    query_value(query, "return_to")
        .filter(|to| {
            (to == "/ui" || to.starts_with("/ui/"))
                && to
                    .bytes()
                    .all(|b| b.is_ascii_graphic() && b != b'\\' && b != b'"')
        })
        .unwrap_or_else(|| "/ui/".to_owned())
}

fn flow_cookie(value: &str, max_age_secs: i64) -> HeaderValue {
    HeaderValue::from_str(&format!(
        "{FLOW_COOKIE}={value}; Path=/sso/; Max-Age={max_age_secs}; Secure; HttpOnly; SameSite=Lax"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// A refusal page for a sign-in that did not go through.
fn refused(status: StatusCode, why: &str) -> Box<Response<Full<Bytes>>> {
    let mut response = page(status, pages::sso_refused(why));
    response
        .headers_mut()
        .append(header::SET_COOKIE, flow_cookie("", 0));
    Box::new(response)
}

fn json(status: StatusCode, value: &serde_json::Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(value.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

impl Web {
    /// The appliance's own base URL for redirect URIs: the public URL when configured,
    /// else this request's origin.
    pub(super) fn base_url(&self, authority: Option<&str>) -> String {
        self.api.public_url().map_or_else(
            || format!("https://{}", authority.unwrap_or("localhost")),
            str::to_owned,
        )
    }

    /// `GET /sso/…`.
    pub(super) async fn sso(
        &self,
        segments: &[&str],
        headers: &hyper::HeaderMap,
        query: Option<&str>,
        authority: Option<&str>,
        peer: Option<std::net::IpAddr>,
    ) -> Answer {
        match segments {
            ["discover"] => self.discover(query, authority).await,
            [id, "login"] => {
                let id = id
                    .parse::<IdentityProviderId>()
                    .map_err(|_| super::not_found())?;
                self.begin(id, return_to(query), FlowPurpose::SignIn, authority)
                    .await
            }
            [id, "callback"] => {
                let id = id
                    .parse::<IdentityProviderId>()
                    .map_err(|_| super::not_found())?;
                self.callback(id, headers, query, peer).await
            }
            _ => Err(super::not_found()),
        }
    }

    /// `GET /sso/discover?email=`: the enabled providers whose domains hold the email's
    /// domain (the domain only: nothing says whether a person exists).
    async fn discover(&self, query: Option<&str>, authority: Option<&str>) -> Answer {
        let email = query_value(query, "email").unwrap_or_default();
        if crate::domain::user::Email::parse(&email).is_err() {
            return Ok(crate::api::error_response(
                &crate::api::error::ApiError::field(
                    crate::api::error::INVALID_QUERY,
                    "email",
                    "email must be an address, such as dana@example.com",
                ),
            ));
        }
        let lk = self.lk();
        let found = blocking(move || lk.discover_providers(&email)).await?;
        let base = self.base_url(authority);
        let providers: Vec<serde_json::Value> = found
            .iter()
            .map(|(account, provider)| {
                serde_json::json!({
                    "account_name": account,
                    "idp_id": provider.id.to_string(),
                    "name": provider.name,
                    "login_url": format!("{base}/sso/{}/login", provider.id),
                })
            })
            .collect();
        Ok(json(
            StatusCode::OK,
            &serde_json::json!({ "providers": providers }),
        ))
    }

    /// Send the browser to provider `id`, with a new flow bound to it.
    pub(super) async fn begin(
        &self,
        id: IdentityProviderId,
        return_to: String,
        purpose: FlowPurpose,
        authority: Option<&str>,
    ) -> Answer {
        let lk = self.lk();
        let sso = blocking(move || lk.sso_provider(id)).await.map_err(|e| {
            let (status, why) = e.explain();
            refused(status, &why)
        })?;
        let redirect_uri = format!("{}/sso/{id}/callback", self.base_url(authority));
        let lk = self.lk();
        let allow_private = lk.allows_private_destinations();
        let authorization = match &sso.provider.protocol {
            Protocol::Github(_) => super::github::begin(&sso, &redirect_uri),
            _ => self.oidc.begin(&sso, &redirect_uri, allow_private).await,
        };
        let authorization = authorization.map_err(|why| {
            let _ = lk.record_sso_refusal(id, None, &why);
            refused(
                StatusCode::BAD_GATEWAY,
                &format!("{} cannot be reached: {why}", sso.provider.name),
            )
        })?;
        let flow = SsoFlow::new(
            id,
            authorization.state,
            authorization.nonce,
            authorization.pkce_verifier,
            redirect_uri,
            return_to,
            purpose,
            lk.now(),
        );
        let sealed = lk.seal_flow(&flow).map_err(|e| {
            let (status, why) = AppOrApi::App(e).explain();
            refused(status, &why)
        })?;
        let mut response = redirect(&authorization.url);
        response
            .headers_mut()
            .append(header::SET_COOKIE, flow_cookie(&sealed, 600));
        Ok(response)
    }

    /// `GET /sso/{id}/callback`: the provider's answer, for the flow this browser holds.
    async fn callback(
        &self,
        id: IdentityProviderId,
        headers: &hyper::HeaderMap,
        query: Option<&str>,
        peer: Option<std::net::IpAddr>,
    ) -> Answer {
        let lk = self.lk();
        let sealed = cookie(headers, FLOW_COOKIE).unwrap_or_default();
        let flow = lk.open_flow(sealed, id).map_err(|e| {
            let (status, why) = AppOrApi::App(e).explain();
            refused(status, &why)
        })?;
        let given_state = query_value(query, "state").unwrap_or_default();
        if !bool::from(given_state.as_bytes().ct_eq(flow.state.as_bytes())) {
            let why = "the answer does not belong to the sign-in this browser started (state)";
            let _ = lk.record_sso_refusal(id, peer, why);
            return Err(refused(StatusCode::FORBIDDEN, why));
        }
        if let Some(error) = query_value(query, "error") {
            let described = query_value(query, "error_description").unwrap_or_default();
            let why = format!("the provider refused: {error} {described}");
            let _ = lk.record_sso_refusal(id, peer, why.trim());
            return Err(refused(StatusCode::FORBIDDEN, why.trim()));
        }
        let code = query_value(query, "code").unwrap_or_default();
        let lk2 = self.lk();
        let sso = blocking(move || lk2.sso_provider(id)).await.map_err(|e| {
            let (status, why) = e.explain();
            refused(status, &why)
        })?;
        let allow_private = lk.allows_private_destinations();
        let login = match &sso.provider.protocol {
            Protocol::Github(_) => super::github::finish(&sso, &flow, &code, allow_private).await,
            _ => self.oidc.finish(&sso, &flow, &code, allow_private).await,
        };
        let login = login.map_err(|why| {
            let _ = lk.record_sso_refusal(id, peer, &why);
            refused(StatusCode::FORBIDDEN, &why)
        })?;
        match flow.purpose {
            FlowPurpose::SignIn => {
                let lk = self.lk();
                let step = blocking(move || lk.sso_sign_in(id, &login, peer)).await;
                self.signed_in(step, &flow.return_to)
            }
            FlowPurpose::Link(session) | FlowPurpose::Reconfirm(session) => {
                let console = self.console(headers, peer).await?;
                if console.session.id.0 != session {
                    return Err(refused(
                        StatusCode::FORBIDDEN,
                        "this was started by another session: start it again from your profile",
                    ));
                }
                let (me, session) = (console.me(), console.session.id);
                let linking = matches!(flow.purpose, FlowPurpose::Link(_));
                let lk = self.lk();
                let done = blocking(move || {
                    if linking {
                        lk.link_external_identity(me, id, &login)
                            .map(|_| super::Notice::Connected)
                    } else {
                        lk.reconfirm_through(me.user, session, id, &login)
                            .map(|()| super::Notice::Reconfirmed)
                    }
                })
                .await;
                match done {
                    Ok(notice) => {
                        let mut response = redirect(&format!("/ui/profile?done={}", notice.key()));
                        response
                            .headers_mut()
                            .append(header::SET_COOKIE, flow_cookie("", 0));
                        Ok(response)
                    }
                    Err(e) => {
                        let (status, why) = e.explain();
                        Err(refused(status, &why))
                    }
                }
            }
        }
    }

    /// `POST /ui/profile/reconfirm`: confirm it is the member through a connected
    /// provider (for five minutes, sensitive changes then need no password).
    pub(super) async fn reconfirm(
        &self,
        console: &super::console::Console,
        form: &super::Form,
        authority: Option<&str>,
    ) -> Answer {
        let Ok(id) = form.get("provider_id").parse::<IdentityProviderId>() else {
            return Err(super::not_found());
        };
        let purpose = FlowPurpose::Reconfirm(console.session.id.0);
        self.begin(id, "/ui/profile".to_owned(), purpose, authority)
            .await
    }

    /// `POST /ui/profile/connect`: connect a provider of the member's account to its user
    /// (it signs in there; the callback links what comes back to this session's user).
    pub(super) async fn connect(
        &self,
        console: &super::console::Console,
        form: &super::Form,
        authority: Option<&str>,
    ) -> Answer {
        let Ok(id) = form.get("provider_id").parse::<IdentityProviderId>() else {
            return Err(super::not_found());
        };
        let purpose = FlowPurpose::Link(console.session.id.0);
        self.begin(id, "/ui/profile".to_owned(), purpose, authority)
            .await
    }

    /// Where a sign-in through a provider leads: the session and `return_to`, or the
    /// second-factor step, or the refusal page.
    fn signed_in(&self, step: Result<LoginStep, AppOrApi>, return_to: &str) -> Answer {
        match step {
            Ok(LoginStep::Done(done)) => {
                let mut response = redirect(return_to);
                let headers = response.headers_mut();
                if let Ok(session) = set_cookie(done.secret.expose(), SESSION_LIFETIME_MS / 1000) {
                    headers.append(header::SET_COOKIE, session);
                }
                headers.append(header::SET_COOKIE, flow_cookie("", 0));
                Ok(response)
            }
            Ok(LoginStep::SecondFactor(ticket)) => {
                let mut response = redirect("/ui/sign-in/code");
                let headers = response.headers_mut();
                headers.append(header::SET_COOKIE, super::door::ticket_cookie(&ticket.0));
                headers.append(header::SET_COOKIE, flow_cookie("", 0));
                Ok(response)
            }
            Ok(LoginStep::ChooseAccount(..)) => Err(refused(
                StatusCode::FORBIDDEN,
                "an identity provider signs people in to its own account only",
            )),
            Err(e) => {
                let (status, why) = e.explain();
                Err(refused(status, &why))
            }
        }
    }
}
