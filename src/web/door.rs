//! The way in: sign-in in steps, sign-out, and the one-time links the appliance hands
//! out (a password reset or the first administrator's setup, an invitation). A link's
//! secret moves out of its URL into an `HttpOnly` cookie at once, so it never sits in
//! the address bar, the history or a `Referer`.

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{self, HeaderValue};
use hyper::{Response, StatusCode};

use super::{
    AppOrApi, Form, Web, blocking, cookie, expire, form_page, page, pages, query_value, redirect,
};
use crate::api::session::set_cookie;
use crate::app::{Acceptor, LoginStep, SecondFactor};
use crate::domain::id::{AccountId, InvitationId};
use crate::domain::session::SESSION_LIFETIME_MS;

/// A login in steps' ticket.
pub(super) const TICKET_COOKIE: &str = "latchkey_login";
/// A one-time link's secret (password reset, first administrator's setup).
const LINK_COOKIE: &str = "latchkey_link";
/// An invitation link's id and secret, `inv_…:token`.
const INVITATION_COOKIE: &str = "latchkey_invitation";

type Answer = super::Answer;

/// The second factor a browser gave.
enum Given {
    /// A TOTP or recovery code.
    Code(String),
    /// A passkey's answer to a ceremony.
    Passkey {
        ceremony: String,
        credential: String,
    },
}

impl Web {
    pub(super) fn sign_in_page(
        &self,
        headers: &hyper::HeaderMap,
        error: Option<&str>,
        email: &str,
    ) -> Response<Full<Bytes>> {
        let status = if error.is_some() {
            StatusCode::UNAUTHORIZED
        } else {
            StatusCode::OK
        };
        // Every enabled provider of an account whose SSO is on (api.md: the sign-in page
        // offers every provider by a direct link).
        let providers = self.lk().sign_in_providers().unwrap_or_default();
        form_page(headers, status, |csrf| {
            pages::sign_in(csrf, error, email, &providers)
        })
    }

    pub(super) fn code_page(
        &self,
        headers: &hyper::HeaderMap,
        error: Option<&str>,
    ) -> Response<Full<Bytes>> {
        let Some(ticket) = cookie(headers, TICKET_COOKIE) else {
            return redirect("/ui/sign-in");
        };
        let status = if error.is_some() {
            StatusCode::UNAUTHORIZED
        } else {
            StatusCode::OK
        };
        // What the user can give (an expired ticket is said so when it is used).
        let (totp, passkey) = self.lk().ticket_factors(ticket).unwrap_or((true, false));
        form_page(headers, status, |csrf| {
            pages::second_factor(csrf, error, totp, passkey)
        })
    }

    /// The account picker: the accounts come from the ticket's login, asked again.
    pub(super) async fn account_page(
        &self,
        headers: &hyper::HeaderMap,
        peer: Option<std::net::IpAddr>,
    ) -> Answer {
        self.resume(headers, None, None, peer).await
    }

    /// The next step of the login whose ticket the browser holds, with the code or the
    /// account it gives (or nothing, to be asked again); without a ticket, the start.
    async fn resume(
        &self,
        headers: &hyper::HeaderMap,
        given: Option<Given>,
        account: Option<AccountId>,
        peer: Option<std::net::IpAddr>,
    ) -> Answer {
        let Some(ticket) = cookie(headers, TICKET_COOKIE).map(str::to_owned) else {
            return Ok(redirect("/ui/sign-in"));
        };
        let lk = self.lk();
        let step = blocking(move || {
            let factor = given.as_ref().map(|given| match given {
                // Six digits are a TOTP code; anything else is tried as a recovery code.
                Given::Code(code)
                    if code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit()) =>
                {
                    SecondFactor::Code(code)
                }
                Given::Code(code) => SecondFactor::Recovery(code),
                Given::Passkey {
                    ceremony,
                    credential,
                } => SecondFactor::Passkey {
                    ceremony,
                    response: credential,
                },
            });
            lk.resume_login(&ticket, factor, account, peer)
        })
        .await;
        self.after(headers, step, None)
    }

    /// `POST /ui/sign-in`: email and password.
    pub(super) async fn sign_in(
        &self,
        headers: &hyper::HeaderMap,
        form: &Form,
        peer: Option<std::net::IpAddr>,
    ) -> Answer {
        let email = form.get("email").to_owned();
        let password = zeroize::Zeroizing::new(form.get("password").to_owned());
        let lk = self.lk();
        let entered = email.clone();
        let step = self
            .api
            .password_gate()
            .run(move || lk.start_login(&entered, &password, None, peer))
            .await
            .map_err(AppOrApi::Api);
        self.after(headers, step, Some(&email))
    }

    /// `POST /ui/sign-in/code`: the TOTP or a recovery code, with the ticket.
    pub(super) async fn code(
        &self,
        headers: &hyper::HeaderMap,
        form: &Form,
        peer: Option<std::net::IpAddr>,
    ) -> Answer {
        let given = match form.get("credential") {
            "" => Given::Code(form.get("code").trim().to_owned()),
            credential => Given::Passkey {
                ceremony: form.get("ceremony").to_owned(),
                credential: credential.to_owned(),
            },
        };
        self.resume(headers, Some(given), None, peer).await
    }

    /// `POST /ui/sign-in/account`: the account picked, with the ticket.
    pub(super) async fn choose(
        &self,
        headers: &hyper::HeaderMap,
        form: &Form,
        peer: Option<std::net::IpAddr>,
    ) -> Answer {
        let Ok(account) = form.get("account_id").parse::<AccountId>() else {
            return Ok(redirect("/ui/sign-in/account"));
        };
        self.resume(headers, None, Some(account), peer).await
    }

    /// Where a login step leads: home with a session, the next step with a ticket, or
    /// the page it came from with the reason.
    pub(super) fn after(
        &self,
        headers: &hyper::HeaderMap,
        step: Result<LoginStep, AppOrApi>,
        email: Option<&str>,
    ) -> Answer {
        match step {
            Ok(LoginStep::Done(done)) => {
                let mut response = redirect("/ui/");
                let headers = response.headers_mut();
                if let Ok(session) = set_cookie(done.secret.expose(), SESSION_LIFETIME_MS / 1000) {
                    headers.append(header::SET_COOKIE, session);
                }
                headers.append(header::SET_COOKIE, expire(TICKET_COOKIE, "/ui/sign-in"));
                Ok(response)
            }
            Ok(LoginStep::SecondFactor(ticket)) => {
                let mut response = redirect("/ui/sign-in/code");
                response
                    .headers_mut()
                    .append(header::SET_COOKIE, ticket_cookie(&ticket.0));
                Ok(response)
            }
            Ok(LoginStep::ChooseAccount(ticket, accounts)) => {
                let named = self.lk().account_names(&accounts).unwrap_or_default();
                let mut response = form_page(headers, StatusCode::OK, |csrf| {
                    pages::choose_account(csrf, &named)
                });
                response
                    .headers_mut()
                    .append(header::SET_COOKIE, ticket_cookie(&ticket.0));
                Ok(response)
            }
            Err(refused) => {
                let (status, why) = refused.explain();
                Err(Box::new(match email {
                    Some(email) => {
                        let mut response = self.sign_in_page(headers, Some(&why), email);
                        *response.status_mut() = status;
                        response
                    }
                    None if cookie(headers, TICKET_COOKIE).is_some()
                        && status == StatusCode::UNAUTHORIZED
                        && !why.contains("start again") =>
                    {
                        self.code_page(headers, Some(&why))
                    }
                    None => {
                        let mut response = page(status, pages::message("Sign-in stopped", &why));
                        response
                            .headers_mut()
                            .append(header::SET_COOKIE, expire(TICKET_COOKIE, "/ui/sign-in"));
                        response
                    }
                }))
            }
        }
    }

    /// The new-password form of a one-time link (its secret in the link cookie).
    pub(super) fn reset_page(
        &self,
        headers: &hyper::HeaderMap,
        error: Option<&str>,
    ) -> Response<Full<Bytes>> {
        if cookie(headers, LINK_COOKIE).is_none() {
            return link_needed();
        }
        let status = if error.is_some() {
            StatusCode::BAD_REQUEST
        } else {
            StatusCode::OK
        };
        form_page(headers, status, |csrf| pages::new_password(csrf, error))
    }

    /// `POST /ui/reset-password`: the link's secret and the new password.
    pub(super) async fn reset(&self, headers: &hyper::HeaderMap, form: &Form) -> Answer {
        let Some(link) = cookie(headers, LINK_COOKIE).map(str::to_owned) else {
            return Ok(self.reset_page(headers, None));
        };
        let new = zeroize::Zeroizing::new(form.get("new_password").to_owned());
        if form.get("confirm_password") != new.as_str() {
            return Err(Box::new(
                self.reset_page(headers, Some("The two passwords are not the same.")),
            ));
        }
        let lk = self.lk();
        match self
            .api
            .password_gate()
            .run(move || lk.reset_password(&link, &new))
            .await
        {
            Ok(()) => {
                let mut response = page(
                    StatusCode::OK,
                    pages::message_ok("Password set", "Your password is set: sign in with it."),
                );
                response.headers_mut().append(
                    header::SET_COOKIE,
                    expire(LINK_COOKIE, "/ui/reset-password"),
                );
                Ok(response)
            }
            Err(refused) => {
                let why = refused.msg.to_string();
                Err(Box::new(self.reset_page(headers, Some(&why))))
            }
        }
    }

    /// `POST /ui/sign-out`: the session ends here and on the server.
    pub(super) async fn sign_out(&self, headers: &hyper::HeaderMap) -> Answer {
        if let Some(session) = self.session(headers).await {
            let lk = self.lk();
            blocking(move || lk.logout(session.user, session.id)).await?;
        }
        let mut response = redirect("/ui/sign-in");
        response
            .headers_mut()
            .append(header::SET_COOKIE, expire(crate::api::SESSION_COOKIE, "/"));
        Ok(response)
    }

    /// `GET /ui/invitation`: the invitation whose link the browser opened: a new person
    /// picks a name and password; an existing user accepts from its session.
    pub(super) async fn invitation_page(
        &self,
        headers: &hyper::HeaderMap,
        error: Option<&str>,
    ) -> Answer {
        let Some((id, token)) = invitation_cookie(headers) else {
            return Ok(link_needed());
        };
        let lk = self.lk();
        let (invitation, account, exists) = blocking(move || lk.invitation_for(id, &token)).await?;
        let signed_in = match self.session(headers).await {
            Some(session) => {
                let lk = self.lk();
                let user = session.user;
                let (member, _) = blocking(move || lk.whoami(user, session.account)).await?;
                Some(member.user.email)
            }
            None => None,
        };
        let status = if error.is_some() {
            StatusCode::BAD_REQUEST
        } else {
            StatusCode::OK
        };
        Ok(form_page(headers, status, |csrf| {
            pages::invitation(
                csrf,
                &pages::InvitationView {
                    account: &account,
                    email: invitation.email.as_str(),
                    exists,
                    signed_in_as: signed_in.as_ref().map(|e| e.as_str()),
                    expires_at: invitation.expires_at,
                },
                error,
            )
        }))
    }

    /// `POST /ui/invitation`: accept, as the signed-in user or as a new person.
    pub(super) async fn accept(&self, headers: &hyper::HeaderMap, form: &Form) -> Answer {
        let Some((id, token)) = invitation_cookie(headers) else {
            return Ok(link_needed());
        };
        let lk = self.lk();
        let accepted = match self.session(headers).await {
            Some(session) => {
                blocking(move || lk.accept_invitation(id, &token, Acceptor::User(session.user)))
                    .await
            }
            None => {
                let name = form.get("name").trim().to_owned();
                let password = zeroize::Zeroizing::new(form.get("password").to_owned());
                if form.get("confirm_password") != password.as_str() {
                    let again = "The two passwords are not the same.";
                    return match self.invitation_page(headers, Some(again)).await {
                        Ok(page) => Err(Box::new(page)),
                        Err(refused) => Err(refused),
                    };
                }
                self.api
                    .password_gate()
                    .run(move || {
                        let acceptor = Acceptor::NewPerson {
                            name: &name,
                            password: &password,
                        };
                        lk.accept_invitation(id, &token, acceptor)
                    })
                    .await
                    .map_err(AppOrApi::Api)
            }
        };
        match accepted {
            Ok(joined) => {
                let text = format!(
                    "You are a member of the account now, as {}. Sign in to use it.",
                    joined.member.user.email.as_str()
                );
                let mut response = page(
                    StatusCode::OK,
                    pages::message_ok("Invitation accepted", &text),
                );
                response.headers_mut().append(
                    header::SET_COOKIE,
                    expire(INVITATION_COOKIE, "/ui/invitation"),
                );
                Ok(response)
            }
            Err(refused) => {
                let (_, why) = refused.explain();
                match self.invitation_page(headers, Some(&why)).await {
                    Ok(page) => Err(Box::new(page)),
                    Err(refused) => Err(refused),
                }
            }
        }
    }
}

/// The page for a link cookie that is missing.
fn link_needed() -> Response<Full<Bytes>> {
    page(
        StatusCode::BAD_REQUEST,
        pages::message(
            "Link needed",
            "Open the link you were given again: this page works from it.",
        ),
    )
}

/// A token as the appliance makes them: URL-safe characters only.
fn plausible_token(token: &str) -> bool {
    !token.is_empty()
        && token.len() <= 256
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// `GET /password_reset?token=…` (the link a person was given): the secret moves into an
/// HttpOnly cookie for the reset page, and the browser goes on to a URL without it. The
/// cookie is `SameSite=Lax`: the link is opened from elsewhere (a mail, a terminal).
pub(super) fn take_link(query: Option<&str>) -> Response<Full<Bytes>> {
    let mut response = redirect("/ui/reset-password");
    if let Some(token) = query_value(query, "token").filter(|t| plausible_token(t))
        && let Ok(value) = HeaderValue::from_str(&format!(
            "{LINK_COOKIE}={token}; Path=/ui/reset-password; Max-Age=3600; Secure; HttpOnly; SameSite=Lax"
        ))
    {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

/// The invitation id in an accept link's path, `/invitations/{id}/accept`.
pub(super) fn invitation_link(path: &str) -> Option<InvitationId> {
    let id = path
        .strip_prefix("/invitations/")?
        .strip_suffix("/accept")?;
    id.parse().ok()
}

/// `GET /invitations/{id}/accept?token=…` from a browser: as a reset link, the secret
/// moves into a cookie, and the browser goes on to the invitation page.
pub(super) fn take_invitation(path: &str, query: Option<&str>) -> Response<Full<Bytes>> {
    let Some(id) = invitation_link(path) else {
        return *super::not_found();
    };
    let mut response = redirect("/ui/invitation");
    if let Some(token) = query_value(query, "token").filter(|t| plausible_token(t))
        && let Ok(value) = HeaderValue::from_str(&format!(
            "{INVITATION_COOKIE}={id}:{token}; Path=/ui/invitation; Max-Age=86400; Secure; HttpOnly; SameSite=Lax"
        ))
    {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

/// The invitation id and token the browser holds.
fn invitation_cookie(headers: &hyper::HeaderMap) -> Option<(InvitationId, String)> {
    let (id, token) = cookie(headers, INVITATION_COOKIE)?.split_once(':')?;
    Some((id.parse().ok()?, token.to_owned()))
}

/// A short-lived (five minutes, as the ticket) HttpOnly cookie for the sign-in pages.
pub(super) fn ticket_cookie(value: &str) -> HeaderValue {
    HeaderValue::from_str(&format!(
        "{TICKET_COOKIE}={value}; Path=/ui/sign-in; Max-Age=300; Secure; HttpOnly; SameSite=Strict"
    ))
    .unwrap_or_else(|_| expire(TICKET_COOKIE, "/ui/sign-in"))
}
