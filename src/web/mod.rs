//! The dashboard: server-rendered pages under `/ui/`, on the API's TLS listener, for the
//! people an account holds (issue 16). Each page turns a form into calls of `app`, so the
//! policies decide for it exactly as for the API; nothing here reads the store.
//!
//! This first part is the door: sign-in in steps (email and password, then the second
//! factor or the account, carried by a sealed login ticket, never by the password
//! again), sign-out, and the signed-in home. Its rules hold for every page that follows:
//! - every state change is a `POST` carrying the double-submit token (a random cookie,
//!   `SameSite=Strict`, and the same value in the form, compared in constant time) from
//!   a page of this origin (`Origin` must be this server's); anything else is refused
//!   and changes nothing;
//! - every page is sent with a strict Content-Security-Policy (no script at all yet, no
//!   inline anything, no framing), `no-store`, `nosniff` and no referrer;
//! - secrets travel in `HttpOnly` cookies only, never in a URL or a page.

mod pages;

use std::sync::Arc;

use base64ct::Encoding as _;
use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use subtle::ConstantTimeEq;

use crate::api::error::ApiError;
use crate::api::request::{is_content_type, read_bounded};
use crate::api::session::{PasswordGate, cookie, session_cookie, set_cookie};
use crate::app::{AppError, Latchkey, LoginStep, SecondFactor};
use crate::domain::id::AccountId;
use crate::domain::ip::{Passage, RestrictionType};
use crate::domain::session::{SESSION_LIFETIME_MS, Session};

/// The double-submit token's cookie.
const CSRF_COOKIE: &str = "latchkey_csrf";
/// A login in steps' ticket.
const TICKET_COOKIE: &str = "latchkey_login";
/// A one-time link's secret (password reset, first administrator's setup), moved out of
/// the link's URL at once.
const LINK_COOKIE: &str = "latchkey_link";
/// The stylesheet, embedded.
const APP_CSS: &str = include_str!("app.css");

/// The dashboard of one server.
#[derive(Debug)]
pub struct Web {
    lk: Arc<Latchkey>,
    passwords: Arc<PasswordGate>,
}

/// What a handler answers: a page, a redirect, or a refusal page.
type Answer = Result<Response<Full<Bytes>>, Box<Response<Full<Bytes>>>>;

impl Web {
    /// The dashboard of `lk`, sharing the API's password gate (one bound on argon2 work
    /// for both).
    pub(crate) fn new(lk: Arc<Latchkey>, passwords: Arc<PasswordGate>) -> Web {
        Web { lk, passwords }
    }

    /// Whether a request is the dashboard's: anything under `/ui`, and `GET /` from a
    /// browser (it asks for HTML), which is sent there.
    pub fn wants(method: &Method, path: &str, headers: &hyper::HeaderMap) -> bool {
        path == "/ui"
            || path.starts_with("/ui/")
            || (method == Method::GET
                && (path == "/" || path == "/password_reset")
                && headers
                    .get(header::ACCEPT)
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|accept| accept.contains("text/html")))
    }

    /// Answer a dashboard request from `peer`.
    pub async fn handle<B>(
        &self,
        request: Request<B>,
        peer: Option<std::net::IpAddr>,
    ) -> Response<Full<Bytes>>
    where
        B: hyper::body::Body<Data = Bytes> + Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let (parts, body) = request.into_parts();
        let path = parts.uri.path().to_owned();
        let answer = match (&parts.method, path.as_str()) {
            (&Method::GET, "/" | "/ui") => Ok(redirect("/ui/")),
            (&Method::GET, "/password_reset") => Ok(take_link(parts.uri.query())),
            (&Method::GET, "/ui/reset-password") => Ok(self.reset_page(&parts.headers, None)),
            (&Method::GET, "/ui/static/app.css") => Ok(asset(APP_CSS, "text/css; charset=utf-8")),
            (&Method::GET, "/ui/") => self.home(&parts.headers, peer).await,
            (&Method::GET, "/ui/sign-in") => Ok(self.sign_in_page(&parts.headers, None, "")),
            (&Method::GET, "/ui/sign-in/code") => Ok(self.code_page(&parts.headers, None)),
            (&Method::GET, "/ui/sign-in/account") => self.account_page(&parts.headers, peer).await,
            (
                &Method::POST,
                "/ui/sign-in"
                | "/ui/sign-in/code"
                | "/ui/sign-in/account"
                | "/ui/sign-out"
                | "/ui/reset-password",
            ) => match self.form(&parts, body).await {
                Ok(form) => match path.as_str() {
                    "/ui/sign-in" => self.sign_in(&parts.headers, &form, peer).await,
                    "/ui/sign-in/code" => self.code(&parts.headers, &form, peer).await,
                    "/ui/sign-in/account" => self.choose(&parts.headers, &form, peer).await,
                    "/ui/reset-password" => self.reset(&parts.headers, &form).await,
                    _ => self.sign_out(&parts.headers).await,
                },
                Err(refused) => Err(refused),
            },
            (
                _,
                "/ui/sign-in"
                | "/ui/sign-in/code"
                | "/ui/sign-in/account"
                | "/ui/sign-out"
                | "/ui/",
            ) => Err(Box::new(page(
                StatusCode::METHOD_NOT_ALLOWED,
                pages::message("Not allowed", "That page does not take this request."),
            ))),
            _ => Err(Box::new(page(
                StatusCode::NOT_FOUND,
                pages::message("Not found", "There is no such page."),
            ))),
        };
        let mut response = answer.unwrap_or_else(|refused| *refused);
        harden(response.headers_mut());
        response
    }

    /// `/ui/`: the signed-in member's home, or the way to sign in.
    async fn home(&self, headers: &hyper::HeaderMap, peer: Option<std::net::IpAddr>) -> Answer {
        let Some(session) = self.signed_in(headers, peer).await? else {
            return Ok(redirect("/ui/sign-in"));
        };
        let lk = Arc::clone(&self.lk);
        let (member, _) = blocking(move || lk.whoami(session.user, session.account)).await?;
        Ok(form_page(headers, StatusCode::OK, |csrf| {
            pages::home(&member, &session, csrf)
        }))
    }

    fn sign_in_page(
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
        form_page(headers, status, |csrf| pages::sign_in(csrf, error, email))
    }

    fn code_page(&self, headers: &hyper::HeaderMap, error: Option<&str>) -> Response<Full<Bytes>> {
        if cookie(headers, TICKET_COOKIE).is_none() {
            return redirect("/ui/sign-in");
        }
        let status = if error.is_some() {
            StatusCode::UNAUTHORIZED
        } else {
            StatusCode::OK
        };
        form_page(headers, status, |csrf| pages::second_factor(csrf, error))
    }

    /// The account picker: the accounts come from the ticket's login, asked again.
    async fn account_page(
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
        code: Option<String>,
        account: Option<AccountId>,
        peer: Option<std::net::IpAddr>,
    ) -> Answer {
        let Some(ticket) = cookie(headers, TICKET_COOKIE).map(str::to_owned) else {
            return Ok(redirect("/ui/sign-in"));
        };
        let lk = Arc::clone(&self.lk);
        let step = blocking(move || {
            // Six digits are a TOTP code; anything else is tried as a recovery code.
            let factor = code.as_deref().map(|code| {
                if code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit()) {
                    SecondFactor::Code(code)
                } else {
                    SecondFactor::Recovery(code)
                }
            });
            lk.resume_login(&ticket, factor, account, peer)
        })
        .await;
        self.after(headers, step, None)
    }

    /// `POST /ui/sign-in`: email and password.
    async fn sign_in(
        &self,
        headers: &hyper::HeaderMap,
        form: &Form,
        peer: Option<std::net::IpAddr>,
    ) -> Answer {
        let email = form.get("email").to_owned();
        let password = zeroize::Zeroizing::new(form.get("password").to_owned());
        let lk = Arc::clone(&self.lk);
        let entered = email.clone();
        let step = self
            .passwords
            .run(move || lk.start_login(&entered, &password, None, peer))
            .await
            .map_err(AppOrApi::Api);
        self.after(headers, step, Some(&email))
    }

    /// `POST /ui/sign-in/code`: the TOTP or a recovery code, with the ticket.
    async fn code(
        &self,
        headers: &hyper::HeaderMap,
        form: &Form,
        peer: Option<std::net::IpAddr>,
    ) -> Answer {
        let code = form.get("code").trim().to_owned();
        self.resume(headers, Some(code), None, peer).await
    }

    /// `POST /ui/sign-in/account`: the account picked, with the ticket.
    async fn choose(
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
    fn after(
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
                headers.append(header::SET_COOKIE, expire(TICKET_COOKIE));
                Ok(response)
            }
            Ok(LoginStep::SecondFactor(ticket)) => {
                let mut response = redirect("/ui/sign-in/code");
                response
                    .headers_mut()
                    .append(header::SET_COOKIE, short_cookie(TICKET_COOKIE, &ticket.0));
                Ok(response)
            }
            Ok(LoginStep::ChooseAccount(ticket, accounts)) => {
                let lk = Arc::clone(&self.lk);
                let named = lk.account_names(&accounts).unwrap_or_default();
                let mut response = form_page(headers, StatusCode::OK, |csrf| {
                    pages::choose_account(csrf, &named)
                });
                response
                    .headers_mut()
                    .append(header::SET_COOKIE, short_cookie(TICKET_COOKIE, &ticket.0));
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
                            .append(header::SET_COOKIE, expire(TICKET_COOKIE));
                        response
                    }
                }))
            }
        }
    }

    /// The new-password form of a one-time link (its secret in the link cookie).
    fn reset_page(&self, headers: &hyper::HeaderMap, error: Option<&str>) -> Response<Full<Bytes>> {
        if cookie(headers, LINK_COOKIE).is_none() {
            return page(
                StatusCode::BAD_REQUEST,
                pages::message(
                    "Link needed",
                    "Open the link you were given again: this page works from it.",
                ),
            );
        }
        let status = if error.is_some() {
            StatusCode::BAD_REQUEST
        } else {
            StatusCode::OK
        };
        form_page(headers, status, |csrf| pages::new_password(csrf, error))
    }

    /// `POST /ui/reset-password`: the link's secret and the new password.
    async fn reset(&self, headers: &hyper::HeaderMap, form: &Form) -> Answer {
        let Some(link) = cookie(headers, LINK_COOKIE).map(str::to_owned) else {
            return Ok(self.reset_page(headers, None));
        };
        let new = zeroize::Zeroizing::new(form.get("new_password").to_owned());
        if form.get("confirm_password") != new.as_str() {
            return Err(Box::new(
                self.reset_page(headers, Some("The two passwords are not the same.")),
            ));
        }
        let lk = Arc::clone(&self.lk);
        match self
            .passwords
            .run(move || lk.reset_password(&link, &new))
            .await
        {
            Ok(()) => {
                let mut response = page(
                    StatusCode::OK,
                    pages::message_ok("Password set", "Your password is set: sign in with it."),
                );
                response
                    .headers_mut()
                    .append(header::SET_COOKIE, expire(LINK_COOKIE));
                Ok(response)
            }
            Err(refused) => {
                let why = refused.msg.to_string();
                Err(Box::new(self.reset_page(headers, Some(&why))))
            }
        }
    }

    /// `POST /ui/sign-out`: the session ends here and on the server.
    async fn sign_out(&self, headers: &hyper::HeaderMap) -> Answer {
        if let Some(session) = self.session(headers).await {
            let lk = Arc::clone(&self.lk);
            blocking(move || lk.logout(session.user, session.id)).await?;
        }
        let mut response = redirect("/ui/sign-in");
        response
            .headers_mut()
            .append(header::SET_COOKIE, expire(crate::api::SESSION_COOKIE));
        Ok(response)
    }

    /// The request's session, if its cookie names a live one.
    /// The request's session, held to the account's dashboard IP restrictions from
    /// `peer` as every session request is (a refusal is a page saying which and why).
    async fn signed_in(
        &self,
        headers: &hyper::HeaderMap,
        peer: Option<std::net::IpAddr>,
    ) -> Result<Option<Session>, Box<Response<Full<Bytes>>>> {
        let Some(session) = self.session(headers).await else {
            return Ok(None);
        };
        let lk = Arc::clone(&self.lk);
        let account = session.account;
        let passage =
            blocking(move || lk.check_ip(account, RestrictionType::Dashboard, peer)).await?;
        match passage {
            Passage::Denied(restriction) => {
                let shown =
                    peer.map_or_else(|| "an unknown address".to_owned(), |ip| ip.to_string());
                Err(Box::new(page(
                    StatusCode::FORBIDDEN,
                    pages::message(
                        "Not from this address",
                        &format!(
                            "IP restriction {restriction} of this account does not allow dashboard sessions from {shown}."
                        ),
                    ),
                )))
            }
            _ => Ok(Some(session)),
        }
    }

    async fn session(&self, headers: &hyper::HeaderMap) -> Option<Session> {
        let secret = session_cookie(headers)?.to_owned();
        let lk = Arc::clone(&self.lk);
        blocking(move || lk.session(&secret)).await.ok()
    }

    /// A form posted from a page of this origin with the double-submit token; anything
    /// else is refused before it is read further.
    async fn form<B>(
        &self,
        parts: &hyper::http::request::Parts,
        body: B,
    ) -> Result<Form, Box<Response<Full<Bytes>>>>
    where
        B: hyper::body::Body<Data = Bytes> + Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let forbidden = || {
            page(
                StatusCode::FORBIDDEN,
                pages::message(
                    "Refused",
                    "This form did not come from a page of this dashboard (or the page is too old): reload it and try again.",
                ),
            )
        };
        if !same_origin(&parts.headers) {
            return Err(Box::new(forbidden()));
        }
        if !is_content_type(&parts.headers, "application/x-www-form-urlencoded") {
            return Err(Box::new(page(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                pages::message(
                    "Bad request",
                    "A form is sent as application/x-www-form-urlencoded.",
                ),
            )));
        }
        let bytes = read_bounded(&parts.headers, &parts.method, body)
            .await
            .map_err(|_| {
                Box::new(page(
                    StatusCode::BAD_REQUEST,
                    pages::message("Bad request", "The form could not be read."),
                ))
            })?;
        let form = Form::parse(&bytes);
        let expected = cookie(&parts.headers, CSRF_COOKIE).unwrap_or("");
        let given = form.get("csrf");
        if expected.is_empty() || !bool::from(expected.as_bytes().ct_eq(given.as_bytes())) {
            return Err(Box::new(forbidden()));
        }
        Ok(form)
    }
}

/// A refusal from `app` or from the API's shared parts.
#[derive(Debug)]
enum AppOrApi {
    App(AppError),
    Api(ApiError),
}

impl From<AppError> for AppOrApi {
    fn from(err: AppError) -> Self {
        AppOrApi::App(err)
    }
}

impl AppOrApi {
    /// The status and the sentence a person reads.
    fn explain(self) -> (StatusCode, String) {
        let api = match self {
            AppOrApi::App(err) => ApiError::from(err),
            AppOrApi::Api(err) => err,
        };
        (api.code.1, api.msg.into())
    }
}

impl From<AppOrApi> for Box<Response<Full<Bytes>>> {
    fn from(err: AppOrApi) -> Self {
        let (status, why) = err.explain();
        Box::new(page(status, pages::message("Something went wrong", &why)))
    }
}

/// Run `work` on the blocking pool (it reads or writes the store).
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, AppError> + Send + 'static,
) -> Result<T, AppOrApi> {
    match tokio::task::spawn_blocking(work).await {
        Ok(done) => done.map_err(AppOrApi::App),
        Err(_) => Err(AppOrApi::App(AppError::DataDir(
            "the operation did not complete".into(),
        ))),
    }
}

/// A posted form's fields (the first value of each name).
#[derive(Debug, Default)]
struct Form(Vec<(String, String)>);

impl Form {
    fn parse(body: &[u8]) -> Form {
        Form(form_urlencoded::parse(body).into_owned().collect())
    }

    fn get(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map_or("", |(_, v)| v.as_str())
    }
}

/// The double-submit token of a page: the browser's, or a new one to set.
struct Csrf {
    value: String,
    new: bool,
}

impl Csrf {
    /// Set the cookie on `response` when the token is new.
    fn keep(&self, response: &mut Response<Full<Bytes>>) {
        if self.new
            && let Ok(value) = HeaderValue::from_str(&format!(
                "{CSRF_COOKIE}={}; Path=/ui; Secure; HttpOnly; SameSite=Strict",
                self.value
            ))
        {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
    }
}

/// A page with a form: rendered with the browser's double-submit token (or a new one,
/// which the answer then sets).
fn form_page(
    headers: &hyper::HeaderMap,
    status: StatusCode,
    render: impl FnOnce(&str) -> maud::Markup,
) -> Response<Full<Bytes>> {
    let csrf = csrf_token(headers);
    let mut response = page(status, render(&csrf.value));
    csrf.keep(&mut response);
    response
}

fn csrf_token(headers: &hyper::HeaderMap) -> Csrf {
    match cookie(headers, CSRF_COOKIE) {
        Some(value) => Csrf {
            value: value.to_owned(),
            new: false,
        },
        None => {
            let mut bytes = [0u8; 24];
            // Without randomness no form can be trusted: an empty token never matches.
            let value = match getrandom::fill(&mut bytes) {
                Ok(()) => base64ct::Base64UrlUnpadded::encode_string(&bytes),
                Err(_) => String::new(),
            };
            Csrf { value, new: true }
        }
    }
}

/// Whether the request's `Origin` is this server (`https://` and its `Host`).
fn same_origin(headers: &hyper::HeaderMap) -> bool {
    let text = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    match (text(header::ORIGIN), text(header::HOST)) {
        (Some(origin), Some(host)) => origin == format!("https://{host}"),
        _ => false,
    }
}

/// `GET /password_reset?token=…` (the link a person was given): the secret moves into an
/// HttpOnly cookie for the reset page, and the browser goes on to a URL without it. The
/// cookie is `SameSite=Lax`: the link is opened from elsewhere (a mail, a terminal).
fn take_link(query: Option<&str>) -> Response<Full<Bytes>> {
    let token = form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.into_owned())
        .filter(|t| {
            !t.is_empty()
                && t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        });
    let mut response = redirect("/ui/reset-password");
    if let Some(token) = token
        && let Ok(value) = HeaderValue::from_str(&format!(
            "{LINK_COOKIE}={token}; Path=/ui/reset-password; Max-Age=3600; Secure; HttpOnly; SameSite=Lax"
        ))
    {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

/// A short-lived (five minutes, as the ticket) HttpOnly cookie for the sign-in pages.
fn short_cookie(name: &str, value: &str) -> HeaderValue {
    HeaderValue::from_str(&format!(
        "{name}={value}; Path=/ui/sign-in; Max-Age=300; Secure; HttpOnly; SameSite=Strict"
    ))
    .unwrap_or_else(|_| expire(name))
}

/// A `Set-Cookie` that removes cookie `name`.
fn expire(name: &str) -> HeaderValue {
    let path = if name == TICKET_COOKIE {
        "/ui/sign-in"
    } else {
        "/"
    };
    HeaderValue::from_str(&format!(
        "{name}=; Path={path}; Max-Age=0; Secure; HttpOnly; SameSite=Strict"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static(""))
}

fn page(status: StatusCode, markup: maud::Markup) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(markup.into_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    response
}

fn redirect(to: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = StatusCode::SEE_OTHER;
    response
        .headers_mut()
        .insert(header::LOCATION, HeaderValue::from_static(to));
    response
}

fn asset(text: &'static str, kind: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    response
}

/// The headers every dashboard answer carries.
fn harden(headers: &mut hyper::HeaderMap) {
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    headers.insert(
        header::STRICT_TRANSPORT_SECURITY,
        HeaderValue::from_static("max-age=31536000"),
    );
}
