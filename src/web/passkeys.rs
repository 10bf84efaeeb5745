//! Passkeys in the dashboard: adding and removing them on the profile, signing in with
//! one (no email or password), and one as the second factor after a password.
//!
//! A passkey form is plain HTML posting `ceremony` and `credential`; `app.js` fills them:
//! it asks this server for a ceremony (a same-origin `POST` with the double-submit
//! token, answered with JSON), has the browser make or use a passkey, and submits the
//! form. Without JavaScript (or on an IP address, where WebAuthn does not work) the form
//! stays hidden and the page says why.

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{self, HeaderValue};
use hyper::{Response, StatusCode};
use maud::{Markup, html};

use super::console::Console;
use super::pages::{csrf_field, when};
use super::{Answer, AppOrApi, Form, Notice, Web, blocking, cookie, done};
use crate::app::{PasskeyChallenge, RelyingParty};
use crate::domain::id::PasskeyId;
use crate::domain::session::PasskeyRecord;

/// Why passkeys are not offered here.
const NO_RELYING_PARTY: &str = "Passkeys work only where the dashboard is opened by its host name (such as https://localhost:8443 or the appliance's domain), not by an IP address.";

/// A ceremony's options for `app.js`, or why there is none, as JSON.
fn challenge_answer(made: Result<PasskeyChallenge, AppOrApi>) -> Answer {
    let (status, body) = match made {
        Ok(challenge) => (
            StatusCode::OK,
            format!(
                r#"{{"ceremony":"{}","options":{}}}"#,
                challenge.ceremony, challenge.options
            ),
        ),
        Err(refused) => {
            let (status, why) = refused.explain();
            (status, serde_json::json!({ "error": why }).to_string())
        }
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(response)
}

/// The relying party of this request, or the refusal that says why there is none.
fn relying_party(rp: Option<&RelyingParty>) -> Result<RelyingParty, AppOrApi> {
    rp.cloned().ok_or_else(|| {
        AppOrApi::App(crate::domain::DomainError::NotApplicable(NO_RELYING_PARTY).into())
    })
}

impl Web {
    /// `POST /ui/sign-in/passkey/options`: a passwordless sign-in's ceremony.
    pub(super) async fn passkey_sign_in_options(&self, rp: Option<&RelyingParty>) -> Answer {
        let lk = self.lk();
        let rp = relying_party(rp);
        challenge_answer(match rp {
            Ok(rp) => blocking(move || lk.start_passkey_sign_in(&rp)).await,
            Err(refused) => Err(refused),
        })
    }

    /// `POST /ui/sign-in/code/options`: the passkey second factor's ceremony, for the
    /// login whose ticket the browser holds.
    pub(super) async fn passkey_factor_options(
        &self,
        headers: &hyper::HeaderMap,
        rp: Option<&RelyingParty>,
    ) -> Answer {
        let lk = self.lk();
        let ticket = cookie(headers, super::door::TICKET_COOKIE).map(str::to_owned);
        let rp = relying_party(rp);
        challenge_answer(match (rp, ticket) {
            (Ok(rp), Some(ticket)) => {
                blocking(move || lk.start_passkey_second_factor(&ticket, &rp)).await
            }
            (Err(refused), _) => Err(refused),
            (_, None) => Err(AppOrApi::App(crate::app::AppError::Unauthenticated(
                "the sign-in expired; start again".into(),
            ))),
        })
    }

    /// `POST /ui/sign-in/passkey`: the browser's answer; signed in, or the sign-in page
    /// with the reason.
    pub(super) async fn passkey_sign_in(
        &self,
        headers: &hyper::HeaderMap,
        form: &Form,
        peer: Option<std::net::IpAddr>,
    ) -> Answer {
        let lk = self.lk();
        let ceremony = form.get("ceremony").to_owned();
        let credential = form.get("credential").to_owned();
        let step = blocking(move || lk.finish_passkey_sign_in(&ceremony, &credential, peer)).await;
        self.after(headers, step, Some(""))
    }

    /// `POST /ui/profile/passkey-options`: a ceremony to add a passkey.
    pub(super) async fn passkey_add_options(
        &self,
        console: &Console,
        rp: Option<&RelyingParty>,
    ) -> Answer {
        let lk = self.lk();
        let me = console.me();
        let rp = relying_party(rp);
        challenge_answer(match rp {
            Ok(rp) => blocking(move || lk.start_passkey_registration(me, &rp)).await,
            Err(refused) => Err(refused),
        })
    }

    /// `POST /ui/profile/passkey-add` and `…/passkey-remove`.
    pub(super) async fn passkey_post(
        &self,
        console: &Console,
        action: &str,
        form: &Form,
    ) -> Result<Answer, AppOrApi> {
        let lk = self.lk();
        let me = console.me();
        if action == "passkey-add" {
            let (ceremony, credential, name) = (
                form.get("ceremony").to_owned(),
                form.get("credential").to_owned(),
                form.get("name").to_owned(),
            );
            return blocking(move || {
                lk.finish_passkey_registration(me, &ceremony, &credential, &name)
            })
            .await
            .map(|_| done("/ui/profile", Notice::PasskeyAdded));
        }
        let id = form
            .get("passkey_id")
            .parse::<PasskeyId>()
            .map_err(|e| AppOrApi::App(e.into()))?;
        self.confirm_if(console, true, form).await?;
        blocking(move || lk.remove_passkey(me, id))
            .await
            .map(|_| done("/ui/profile", Notice::PasskeyRemoved))
    }
}

/// A form a passkey completes (hidden until `app.js` shows it): it asks `options` for a
/// ceremony, has the browser `create` or `get` a passkey, and posts the answer to
/// `action` with `fields`.
pub fn passkey_form(
    csrf: &str,
    action: &str,
    options: &str,
    mode: &str,
    label: &str,
    fields: Markup,
) -> Markup {
    html! {
        form.passkey method="post" action=(action) data-passkey=(mode) data-options=(options) hidden {
            (csrf_field(csrf))
            (fields)
            input type="hidden" name="ceremony";
            input type="hidden" name="credential";
            p.error role="alert" data-passkey-error hidden {}
            button type="submit" { (label) }
        }
    }
}

/// Said where a passkey form is, until `app.js` finds passkeys usable here.
pub fn unavailable_note() -> Markup {
    html! { p.hint data-passkey-unavailable { (NO_RELYING_PARTY) " Using one needs JavaScript." } }
}

/// The profile's passkeys section: the list, remove (with a proof), and add.
pub fn profile_section(csrf: &str, passkeys: &[PasskeyRecord]) -> Markup {
    html! {
        section aria-labelledby="passkeys" {
            h2 #passkeys { "Passkeys" }
            p { "A passkey signs you in with your device's screen lock or a security key: no password to type, nothing to phish. It also counts as your second factor." }
            @if !passkeys.is_empty() {
                div.scroll {
                    table {
                        thead { tr { th { "Name" } th { "For" } th { "Added" } th { "Last used" } th { "Remove" } } }
                        tbody {
                            @for passkey in passkeys {
                                tr {
                                    td { (passkey.name) }
                                    td { (passkey.rp_id) }
                                    td { (when(passkey.created_at)) }
                                    td { (passkey.last_used_at.map_or_else(|| "never".to_owned(), when)) }
                                    td {
                                        form.inline method="post" action="/ui/profile/passkey-remove" {
                                            (csrf_field(csrf))
                                            input type="hidden" name="passkey_id" value=(passkey.id.to_string());
                                            @let field = format!("confirm-{}", passkey.id);
                                            label for=(field) { "Your password (or a current code)" }
                                            input id=(field) type="password" name="confirm" autocomplete="current-password" required;
                                            button.danger type="submit" { "Remove " (passkey.name) }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            (unavailable_note())
            (passkey_form(csrf, "/ui/profile/passkey-add", "/ui/profile/passkey-options", "create", "Add a passkey", html! {
                label for="passkey_name" { "Name it (which device or key)" }
                input #passkey_name type="text" name="name" maxlength="64" value="Passkey" required;
            }))
        }
    }
}
