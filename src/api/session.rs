//! `/login`, `/logout`, `/me` and `/me/password`: dashboard sessions over a cookie.

use super::handlers::{Ctx, required};
use super::mail::Mail;
use super::request::*;
use super::*;
use crate::app::{Me, SecondFactor};
use crate::domain::session::SESSION_LIFETIME_MS;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CodeBody {
    code: Option<String>,
    recovery_code: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginBody {
    email: Option<String>,
    password: Option<String>,
    totp_code: Option<String>,
    recovery_code: Option<String>,
    account_id: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ResetBody {
    token: Option<String>,
    new_password: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MeBody {
    name: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EmailBody {
    email: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenBody {
    token: Option<String>,
}

/// The answer to a request for a mailed link: the same whether or not a user has the
/// address, and given before anything is looked up.
fn accepted() -> Response<Full<Bytes>> {
    json_response(
        StatusCode::ACCEPTED,
        &json!({"msg": "if a user has this email, a one-time link valid for an hour is on its way to it"}),
    )
}

/// No mail transport: no link can be sent (said alike to everyone).
fn no_mail() -> ApiError {
    ApiError::new(
        error::NO_MAIL,
        "this appliance sends no mail (its operator has not set --smtp-url), so no link can be sent; ask an administrator",
    )
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PasswordBody {
    current_password: Option<String>,
    new_password: Option<String>,
}

/// The session secret of a request's `Cookie` headers, if it carries one.
pub(crate) fn session_cookie(headers: &hyper::HeaderMap) -> Option<&str> {
    cookie(headers, SESSION_COOKIE)
}

/// The value of cookie `wanted` (the first one, non-empty), if the request carries it.
pub(crate) fn cookie<'a>(headers: &'a hyper::HeaderMap, wanted: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == wanted)
        .map(|(_, value)| value.trim())
        .filter(|value| !value.is_empty())
}

/// `Set-Cookie` for a session secret: sent over HTTPS only, invisible to scripts, never
/// sent by another site's requests, and gone when the session ends.
pub(crate) fn set_cookie(secret: &str, max_age_secs: i64) -> Result<HeaderValue, ApiError> {
    HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={secret}; Path=/; Max-Age={max_age_secs}; Secure; HttpOnly; SameSite=Strict"
    ))
    .map_err(|_| ApiError::new(error::INTERNAL, "the session cookie could not be written"))
}

/// Password requests (logins, password changes, acceptances) in progress at most: a
/// flood of logins waits here, off the async workers, for the password threads
/// (`serve`'s `password_workers`), and past it is refused.
const PASSWORD_REQUESTS: usize = 64;

/// Admits password work: at most [`PASSWORD_REQUESTS`] at once, each on the blocking
/// pool (at normal priority: it reads and writes the store there, and only the argon2
/// inside it goes to the password threads).
#[derive(Debug)]
pub(crate) struct PasswordGate {
    admitted: Arc<tokio::sync::Semaphore>,
}

impl Default for PasswordGate {
    fn default() -> Self {
        PasswordGate {
            admitted: Arc::new(tokio::sync::Semaphore::new(PASSWORD_REQUESTS)),
        }
    }
}

impl PasswordGate {
    /// Run password work on the blocking pool; past [`PASSWORD_REQUESTS`], refuse (429).
    pub(crate) async fn run<T, F>(&self, work: F) -> Result<T, ApiError>
    where
        F: FnOnce() -> Result<T, AppError> + Send + 'static,
        T: Send + 'static,
    {
        let Ok(admitted) = Arc::clone(&self.admitted).try_acquire_owned() else {
            let mut busy = ApiError::new(
                error::RATE_LIMITED,
                "too many logins at once; try again in a second",
            );
            busy.header = Some(error::ErrorHeader::RetryAfter(1));
            return Err(busy);
        };
        tokio::task::spawn_blocking(move || {
            let _admitted = admitted;
            work()
        })
        .await
        .map_err(|_| ApiError::new(error::INTERNAL, "the operation did not complete"))?
        .map_err(ApiError::from)
    }
}

impl Api {
    pub(super) async fn login(
        &self,
        body: Bytes,
        peer: Option<std::net::IpAddr>,
        warning: &mut Option<HeaderValue>,
    ) -> Reply {
        let body: LoginBody = parse(&body)?;
        let email = required(body.email.as_deref(), "email")?.to_owned();
        let password = required(body.password.as_deref(), "password")?.to_owned();
        let account: Option<AccountId> = body
            .account_id
            .as_deref()
            .map(|text| {
                text.parse().map_err(|_| {
                    ApiError::field(
                        error::INVALID_FIELD,
                        "account_id",
                        format!("{text:?} is not an account id"),
                    )
                })
            })
            .transpose()?;
        let lk = Arc::clone(&self.lk);
        let logged_in = self
            .passwords
            .run(move || {
                let factor = match (&body.totp_code, &body.recovery_code) {
                    (Some(code), _) => Some(SecondFactor::Code(code)),
                    (None, Some(code)) => Some(SecondFactor::Recovery(code)),
                    (None, None) => None,
                };
                lk.login(&email, &password, factor, account, peer)
            })
            .await?;
        *warning = self.gate(logged_in.session.account, RestrictionType::Dashboard, peer)?;
        let session = &logged_in.session;
        let mut response = json_response(
            StatusCode::OK,
            &json!({
                "user_id": session.user.to_string(),
                "account_id": session.account.to_string(),
                "session_id": session.id.to_string(),
                "expires_at": session.expires_at.to_rfc3339(),
                "mfa_enrollment_required": session.enrollment_only,
            }),
        );
        response.headers_mut().insert(
            header::SET_COOKIE,
            set_cookie(logged_in.secret.expose(), SESSION_LIFETIME_MS / 1000)?,
        );
        Ok(response)
    }
}

impl Api {
    /// `POST /password_reset/request {"email"}`, unauthenticated: a forgotten password.
    /// The answer is the same, and as fast, for a known and an unknown email: the link is
    /// made and mailed (to the address on file only) after the answer, in the background.
    /// Limited per email and per source address.
    pub(super) async fn request_password_reset(
        &self,
        body: Bytes,
        peer: Option<std::net::IpAddr>,
    ) -> Reply {
        let body: EmailBody = parse(&body)?;
        let email = required(body.email.as_deref(), "email")?.to_owned();
        self.mail_password_reset(email, peer)?;
        Ok(accepted())
    }

    /// Mail a password reset link to `email` when a user has it (the answer is the same
    /// either way, and the link is made and sent after it, so timing says nothing
    /// either). Refused only for a malformed address, no mail server, or too many asks.
    pub(crate) fn mail_password_reset(
        &self,
        email: String,
        peer: Option<std::net::IpAddr>,
    ) -> Result<(), ApiError> {
        // A malformed address is refused alike whether or not some user has it: nobody has.
        crate::domain::user::Email::parse(&email)?;
        let mailer = self.mailer.clone().ok_or_else(no_mail)?;
        self.lk.admit_link_request(&email, peer)?;
        let (lk, base) = (Arc::clone(&self.lk), Arc::clone(&self.link_base));
        tokio::spawn(async move {
            let made = tokio::task::spawn_blocking(move || lk.request_password_reset(&email)).await;
            match made {
                Ok(Ok(Some(link))) => {
                    let url = format!("{base}/password_reset?token={}", link.secret.expose());
                    mailer.send_link(
                        &link.to,
                        Mail::PasswordReset,
                        &url,
                        &link.expires_at.to_rfc3339(),
                    );
                }
                // Nobody has that email: nothing to send, and nothing to say.
                Ok(Ok(None)) => {}
                Ok(Err(err)) => {
                    tracing::warn!(error = %err, "a password reset link could not be made")
                }
                Err(_) => tracing::warn!("a password reset link could not be made"),
            }
        });
        Ok(())
    }

    /// `POST /email_verification {"token"}`, unauthenticated: use an email proof link.
    pub(super) async fn prove_email(&self, body: Bytes) -> Reply {
        let body: TokenBody = parse(&body)?;
        let token = required(body.token.as_deref(), "token")?.to_owned();
        let lk = Arc::clone(&self.lk);
        blocking(move || lk.prove_email(&token)).await?;
        Ok(no_content())
    }

    /// `POST /password_reset`: a new password with a reset link's token, unauthenticated.
    pub(super) async fn reset_password(&self, body: Bytes) -> Reply {
        let body: ResetBody = parse(&body)?;
        let token = required(body.token.as_deref(), "token")?.to_owned();
        let new = required(body.new_password.as_deref(), "new_password")?.to_owned();
        let lk = Arc::clone(&self.lk);
        self.passwords
            .run(move || lk.reset_password(&token, &new))
            .await?;
        Ok(no_content())
    }
}

/// The calling user, or a 400 for a bot (bots have no session, password or profile).
fn user_of(caller: &Caller) -> Result<UserId, ApiError> {
    match caller.actor.principal {
        Principal::User(user) => Ok(user),
        _ => Err(ApiError::new(
            error::NOT_APPLICABLE,
            "only users have sessions and passwords; bot users act with API keys",
        )),
    }
}

/// A TOTP code as given: six digits (spaces around them allowed), else a 400.
fn totp_code(code: &str) -> Result<&str, ApiError> {
    let code = code.trim();
    if code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit()) {
        Ok(code)
    } else {
        Err(ApiError::field(
            error::INVALID_FIELD,
            "code",
            "a TOTP code is six digits",
        ))
    }
}

/// The calling user acting on itself.
fn me_of(caller: &Caller) -> Result<Me, ApiError> {
    Ok(Me {
        user: user_of(caller)?,
        account: caller.account,
        session: caller.session,
    })
}

impl Ctx {
    pub(super) async fn logout(self) -> Reply {
        let user = user_of(&self.caller)?;
        let session = self.caller.session.ok_or_else(|| {
            ApiError::new(
                error::NOT_APPLICABLE,
                "logout ends a session; this request came with an API key",
            )
        })?;
        let lk = Arc::clone(&self.lk);
        blocking(move || lk.logout(user, session)).await?;
        let mut response = no_content();
        response
            .headers_mut()
            .insert(header::SET_COOKIE, set_cookie("", 0)?);
        Ok(response)
    }

    pub(super) async fn enroll_totp(self) -> Reply {
        let me = me_of(&self.caller)?;
        let lk = Arc::clone(&self.lk);
        let enrollment = blocking(move || lk.enroll_totp(me)).await?;
        self.ok(&json!({
            "otpauth_uri": enrollment.otpauth_uri.expose(),
            "qr_png_base64": enrollment.qr_png_base64.expose(),
        }))
    }

    pub(super) async fn confirm_totp(self) -> Reply {
        let me = me_of(&self.caller)?;
        let body: CodeBody = parse(&self.body)?;
        let code = totp_code(required(body.code.as_deref(), "code")?)?.to_owned();
        let lk = Arc::clone(&self.lk);
        let codes = blocking(move || lk.confirm_totp(me, &code)).await?;
        let codes: Vec<&str> = codes.iter().map(|c| c.expose()).collect();
        self.ok(&json!({"recovery_codes": codes}))
    }

    pub(super) async fn disable_totp(self) -> Reply {
        let me = me_of(&self.caller)?;
        let body: CodeBody = parse(&self.body)?;
        if let Some(code) = &body.code {
            totp_code(code)?;
        }
        let lk = Arc::clone(&self.lk);
        blocking(move || {
            let factor = match (&body.code, &body.recovery_code) {
                (Some(code), _) => SecondFactor::Code(code),
                (None, Some(code)) => SecondFactor::Recovery(code),
                (None, None) => {
                    return Err(crate::domain::DomainError::invalid(
                        "code",
                        "a current code (or a recovery code) is required",
                    )
                    .into());
                }
            };
            lk.disable_totp(me, factor)
        })
        .await?;
        Ok(no_content())
    }

    pub(super) async fn issue_password_reset(self, id: &str) -> Reply {
        let user: UserId = path_id(id)?;
        let (lk, actor, account) = (Arc::clone(&self.lk), self.caller.actor, self.caller.account);
        let (secret, expires_at) =
            blocking(move || lk.issue_password_reset(actor, account, user)).await?;
        self.ok(&json!({
            "reset_url": self
                .base
                .uri(&format!("/password_reset?token={}", secret.expose())),
            "expires_at": expires_at.to_rfc3339(),
        }))
    }

    pub(super) async fn me(self) -> Reply {
        let user = user_of(&self.caller)?;
        let (lk, account) = (Arc::clone(&self.lk), self.caller.account);
        let (member, has_password) = blocking(move || lk.whoami(user, account)).await?;
        let mut view = views::member(&self.base, &member);
        if let Some(fields) = view.as_object_mut() {
            fields.insert("account_id".into(), json!(account.to_string()));
            fields.insert("password_set".into(), json!(has_password));
            fields.insert(
                "session_id".into(),
                json!(self.caller.session.map(|s| s.to_string())),
            );
        }
        self.ok(&view)
    }

    pub(super) async fn change_password(self) -> Reply {
        let me = me_of(&self.caller)?;
        let body: PasswordBody = parse(&self.body)?;
        let new = required(body.new_password.as_deref(), "new_password")?.to_owned();
        let current = body.current_password;
        let lk = Arc::clone(&self.lk);
        self.passwords
            .run(move || lk.change_password(me, current.as_deref(), &new))
            .await?;
        Ok(no_content())
    }

    /// `PATCH /me {"name"}`: the caller renames itself, in every account it belongs to.
    pub(super) async fn update_me(self) -> Reply {
        let me = me_of(&self.caller)?;
        let body: MeBody = parse(&self.body)?;
        let name = required(body.name.as_deref(), "name")?.to_owned();
        let lk = Arc::clone(&self.lk);
        blocking(move || lk.rename_self(me, &name)).await?;
        self.me().await
    }

    /// `POST /me/email_verification`: mail the caller a one-time link proving its email.
    pub(super) async fn request_email_proof(self) -> Reply {
        let me = me_of(&self.caller)?;
        let mailer = self.mailer.clone().ok_or_else(no_mail)?;
        let (lk, peer) = (Arc::clone(&self.lk), self.peer);
        let link = blocking(move || {
            let user = lk.whoami(me.user, me.account)?.0.user;
            lk.admit_link_request(user.email.as_str(), peer)?;
            lk.request_email_proof(me)
        })
        .await?;
        let url = format!(
            "{}/email_verification?token={}",
            self.link_base,
            link.secret.expose()
        );
        mailer.send_link(
            &link.to,
            Mail::EmailProof,
            &url,
            &link.expires_at.to_rfc3339(),
        );
        Ok(accepted())
    }
}
