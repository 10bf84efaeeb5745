//! Single sign-on in the browser: `GET /sso/{id}/login` sends the browser to the
//! provider, `GET /sso/{id}/callback` takes its answer (OIDC), and `GET /sso/discover`
//! names the providers for an email's domain. A flow is bound to the browser that began
//! it by a sealed, ten-minute `latchkey_sso` cookie holding its `state`, nonce and PKCE
//! verifier; the callback and the SAML ACS are cross-site by nature, so they are exempt
//! from the origin check: the state, the code exchange and the ID token's checks (or the
//! SAML response's signature) authenticate them. Flows begun from the profile (connect,
//! confirm) end in the session that began them; a SAML answer, a cross-site post without
//! the session cookie, reaches it through `POST /sso/{id}/finish` from a page of this
//! origin.

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

/// The posts under `/sso/{id}/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SsoPost {
    /// `acs`: a SAML provider's answer (cross-site).
    Acs,
    /// `finish`: a verified SAML answer to a connect or a confirm, carried on by a page
    /// of this origin.
    Finish,
}

/// The provider and the post of a `/sso/{id}/acs` or `/sso/{id}/finish` path.
pub(super) fn post_path(path: &str) -> Option<(IdentityProviderId, SsoPost)> {
    let (id, action) = path.strip_prefix("/sso/")?.split_once('/')?;
    let action = match action {
        "acs" => SsoPost::Acs,
        "finish" => SsoPost::Finish,
        _ => return None,
    };
    Some((id.parse().ok()?, action))
}

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
    flow_cookie_with(value, max_age_secs, "Lax")
}

fn flow_cookie_with(value: &str, max_age_secs: i64, same_site: &str) -> HeaderValue {
    HeaderValue::from_str(&format!(
        "{FLOW_COOKIE}={value}; Path=/sso/; Max-Age={max_age_secs}; Secure; HttpOnly; SameSite={same_site}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// latchkey's SAML entity id and ACS URL for provider `id`, under `base`.
fn sp_urls(base: &str, id: IdentityProviderId) -> (String, String) {
    (
        format!("{base}/sso/{id}/metadata"),
        format!("{base}/sso/{id}/acs"),
    )
}

/// The AuthnRequest to `saml`'s provider, as an authorization to send the browser to: its
/// `RelayState` is the flow's state, its request ID the flow's nonce.
fn saml_request(
    saml: &crate::domain::federation::SamlSettings,
    base: &str,
    id: IdentityProviderId,
    now: crate::domain::time::Timestamp,
) -> Result<super::oidc::Authorization, String> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|_| "no randomness for the relay state".to_owned())?;
    let state: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let (entity, acs) = sp_urls(base, id);
    let at = time::OffsetDateTime::from_unix_timestamp(now.as_millis() / 1000)
        .map_err(|e| e.to_string())?;
    let (url, request) = super::saml::authn_request(&saml.sso_url, &entity, &acs, &state, at)?;
    Ok(super::oidc::Authorization {
        url,
        state,
        nonce: request,
        pkce_verifier: String::new(),
    })
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

/// A SAML response posted to the ACS, with what it is checked against.
struct SamlAnswer {
    /// The `SAMLResponse` field (base64).
    response: String,
    /// The request ID of the flow this browser holds, if any.
    in_response_to: Option<String>,
    /// latchkey's entity id and ACS URL for the provider.
    sp_urls: (String, String),
    /// Where it came from (for the refusal events).
    peer: Option<std::net::IpAddr>,
}

impl SamlAnswer {
    /// The login the response carries, once its signature, audience, destination,
    /// times and the rest are checked and its assertion ID is used up; or the refusal
    /// (recorded as an event). Signature checks take milliseconds: run it on the
    /// blocking pool.
    fn check(
        self,
        lk: &crate::app::Latchkey,
        id: IdentityProviderId,
        saml: &crate::domain::federation::SamlSettings,
    ) -> Result<crate::app::ExternalLogin, (StatusCode, String)> {
        let fail = |status: StatusCode, why: String| {
            let _ = lk.record_sso_refusal(id, self.peer, &why);
            (status, why)
        };
        if self.in_response_to.is_none() && !saml.allow_idp_initiated {
            return Err(fail(
                StatusCode::FORBIDDEN,
                "this provider's sign-ins must start here (IdP-initiated sign-in is off), or the sign-in this browser started expired".into(),
            ));
        }
        let encoded: String = self
            .response
            .chars()
            .filter(|c| !c.is_ascii_whitespace())
            .collect();
        let xml = <base64ct::Base64 as base64ct::Encoding>::decode_vec(&encoded)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .ok_or_else(|| {
                fail(
                    StatusCode::FORBIDDEN,
                    "the SAMLResponse is not base64 XML".into(),
                )
            })?;
        if xml.len() > 256 * 1024 {
            return Err(fail(
                StatusCode::FORBIDDEN,
                "the SAMLResponse is over 256 KiB".into(),
            ));
        }
        let (entity, acs) = &self.sp_urls;
        let expected = super::saml::Expected {
            idp_entity_id: &saml.idp_entity_id,
            sp_entity_id: entity,
            acs_url: acs,
            in_response_to: self.in_response_to.as_deref(),
            want_assertions_signed: saml.want_assertions_signed,
            attributes: &saml.attributes,
            now: lk.now().as_millis() / 1000,
        };
        let verified = super::saml::verify(&xml, &saml.certificates, &expected)
            .map_err(|why| fail(StatusCode::FORBIDDEN, why))?;
        lk.use_saml_assertion(id, &verified.assertion_id, verified.not_on_or_after)
            .map_err(|e| {
                let (status, why) = AppOrApi::App(e).explain();
                fail(status, why)
            })?;
        let mut login = verified.login;
        login.email_verified = saml.email_verified;
        Ok(login)
    }
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
                let (url, flow, _) = self
                    .begin(id, return_to(query), FlowPurpose::SignIn, authority)
                    .await?;
                let mut response = redirect(&url);
                response.headers_mut().append(header::SET_COOKIE, flow);
                Ok(response)
            }
            [id, "metadata"] => {
                let id = id
                    .parse::<IdentityProviderId>()
                    .map_err(|_| super::not_found())?;
                self.metadata(id, authority).await
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

    /// A new flow with provider `id`: where to send the browser, the flow's cookie that
    /// binds the answer to it, and the provider's name.
    async fn begin(
        &self,
        id: IdentityProviderId,
        return_to: String,
        purpose: FlowPurpose,
        authority: Option<&str>,
    ) -> Result<(String, HeaderValue, String), Box<Response<Full<Bytes>>>> {
        let lk = self.lk();
        let sso = blocking(move || lk.sso_provider(id)).await.map_err(|e| {
            let (status, why) = e.explain();
            refused(status, &why)
        })?;
        let redirect_uri = format!("{}/sso/{id}/callback", self.base_url(authority));
        let lk = self.lk();
        let allow_private = lk.allows_private_destinations();
        let base = self.base_url(authority);
        let authorization = match &sso.provider.protocol {
            Protocol::Github(_) => super::github::begin(&sso, &redirect_uri),
            Protocol::Saml(saml) => saml_request(saml, &base, id, lk.now()),
            Protocol::Oidc(_) => self.oidc.begin(&sso, &redirect_uri, allow_private).await,
        };
        // A SAML answer comes back as a cross-site POST, which a Lax cookie would miss.
        let same_site = if matches!(sso.provider.protocol, Protocol::Saml(_)) {
            "None"
        } else {
            "Lax"
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
        Ok((
            authorization.url,
            flow_cookie_with(&sealed, 600, same_site),
            sso.provider.name,
        ))
    }

    /// `GET /sso/{id}/metadata`: latchkey's SAML service-provider metadata for provider
    /// `id` (unauthenticated: providers fetch it).
    async fn metadata(&self, id: IdentityProviderId, authority: Option<&str>) -> Answer {
        let lk = self.lk();
        let provider = blocking(move || lk.provider_for_metadata(id))
            .await
            .map_err(|_| super::not_found())?;
        let Protocol::Saml(saml) = &provider.protocol else {
            return Err(super::not_found());
        };
        let (entity, acs) = sp_urls(&self.base_url(authority), id);
        let mut response = Response::new(Full::new(Bytes::from(super::saml::metadata(
            &entity,
            &acs,
            saml.want_assertions_signed,
        ))));
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/samlmetadata+xml"),
        );
        Ok(response)
    }

    /// `POST /sso/{id}/acs`: a SAML response (HTTP-POST binding). Cross-site by nature:
    /// no origin check; the response's signature authenticates it, and for one latchkey
    /// asked for, the `RelayState` and the request ID bind it to the browser's flow. An
    /// unsolicited (IdP-initiated) response is taken only when the provider allows it.
    /// A sign-in ends here; a connect or a confirm needs the session, whose strict cookie
    /// this cross-site post lacks, so it goes on through [`Self::finish`].
    pub(super) async fn acs(
        &self,
        id: IdentityProviderId,
        headers: &hyper::HeaderMap,
        body: &[u8],
        authority: Option<&str>,
        peer: Option<std::net::IpAddr>,
    ) -> Answer {
        let form = super::Form::parse(body);
        let lk = self.lk();
        let sso = blocking(move || lk.sso_provider(id)).await.map_err(|e| {
            let (status, why) = e.explain();
            refused(status, &why)
        })?;
        let Protocol::Saml(saml) = sso.provider.protocol else {
            return Err(super::not_found());
        };
        let lk = self.lk();
        let flow = cookie(headers, FLOW_COOKIE)
            .and_then(|sealed| lk.open_flow(sealed, id).ok())
            .filter(|flow| {
                bool::from(
                    form.get("RelayState")
                        .as_bytes()
                        .ct_eq(flow.state.as_bytes()),
                )
            });
        let answer = SamlAnswer {
            response: form.get("SAMLResponse").to_owned(),
            in_response_to: flow.as_ref().map(|f| f.nonce.clone()),
            sp_urls: sp_urls(&self.base_url(authority), id),
            peer,
        };
        let login = blocking(move || Ok(answer.check(&lk, id, &saml)))
            .await
            .map_err(|e| {
                let (status, why) = e.explain();
                refused(status, &why)
            })?
            .map_err(|(status, why)| refused(status, &why))?;
        match flow {
            None => {
                self.finish_flow(id, FlowPurpose::SignIn, "/ui/", login, headers, peer)
                    .await
            }
            Some(flow) if flow.purpose == FlowPurpose::SignIn => {
                self.finish_flow(id, flow.purpose, &flow.return_to, login, headers, peer)
                    .await
            }
            Some(flow) => {
                let token = self.lk().seal_finished(flow, login).map_err(|e| {
                    let (status, why) = AppOrApi::App(e).explain();
                    refused(status, &why)
                })?;
                let mut response = page(
                    StatusCode::OK,
                    pages::sso_continue(&sso.provider.name, &format!("/sso/{id}/finish"), &token),
                );
                response
                    .headers_mut()
                    .append(header::SET_COOKIE, flow_cookie("", 0));
                Ok(response)
            }
        }
    }

    /// `POST /sso/{id}/finish`: a connect or a confirm through a SAML provider, carried
    /// from the ACS by a page of this origin (so the session cookie comes with it). The
    /// sealed answer names the session that began the flow: only that session finishes it.
    pub(super) async fn finish(
        &self,
        id: IdentityProviderId,
        headers: &hyper::HeaderMap,
        body: &[u8],
        peer: Option<std::net::IpAddr>,
    ) -> Answer {
        let form = super::Form::parse(body);
        let finished = self
            .lk()
            .open_finished(form.get("token"), id)
            .map_err(|e| {
                let (status, why) = AppOrApi::App(e).explain();
                refused(status, &why)
            })?;
        self.finish_flow(
            id,
            finished.purpose,
            &finished.return_to,
            finished.login,
            headers,
            peer,
        )
        .await
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
        self.finish_flow(id, flow.purpose, &flow.return_to, login, headers, peer)
            .await
    }

    /// What a verified external login does for its flow's purpose: a session, a link to
    /// the signed-in user, or its reconfirmation.
    async fn finish_flow(
        &self,
        id: IdentityProviderId,
        purpose: FlowPurpose,
        return_to: &str,
        login: crate::app::ExternalLogin,
        headers: &hyper::HeaderMap,
        peer: Option<std::net::IpAddr>,
    ) -> Answer {
        match purpose {
            FlowPurpose::SignIn => {
                let lk = self.lk();
                let step = blocking(move || lk.sso_sign_in(id, &login, peer)).await;
                self.signed_in(step, return_to)
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
                let linking = matches!(purpose, FlowPurpose::Link(_));
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

    /// `POST /ui/profile/connect` (connect a provider of the member's account to its
    /// user: it signs in there, and what comes back is linked to this session's user) and
    /// `POST /ui/profile/reconfirm` (confirm it is the member through a connected provider:
    /// for five minutes, sensitive changes then need no password).
    pub(super) async fn profile_flow(
        &self,
        console: &super::console::Console,
        form: &super::Form,
        authority: Option<&str>,
        linking: bool,
    ) -> Answer {
        let Ok(id) = form.get("provider_id").parse::<IdentityProviderId>() else {
            return Err(super::not_found());
        };
        let session = console.session.id.0;
        let purpose = if linking {
            FlowPurpose::Link(session)
        } else {
            FlowPurpose::Reconfirm(session)
        };
        let (url, flow, name) = self
            .begin(id, "/ui/profile".to_owned(), purpose, authority)
            .await?;
        // A form's post may not redirect to another origin (`form-action 'self'`): a
        // page of this origin sends the browser on instead.
        let mut response = page(StatusCode::OK, pages::sso_leave(&name, &url));
        response.headers_mut().append(header::SET_COOKIE, flow);
        Ok(response)
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
