//! My profile: name, password, two-factor authentication (the QR code as an image and
//! the secret as text, recovery codes shown once with a download), the personal
//! authtoken (rotated and shown once), and the sessions (sign out of the others).

use hyper::StatusCode;
use maud::{Markup, html};

use super::console::Console;
use super::pages::{button_form, csrf_field, error_line, notice_line, when};
use super::{Answer, AppOrApi, Form, Notice, Refusal, Web, blocking, done, not_found, status_of};
use crate::app::SecondFactor;
use crate::domain::credential::Credential;
use crate::domain::federation::{ExternalIdentity, IdentityProvider};
use crate::domain::session::{PasskeyRecord, Session};
use crate::domain::time::Timestamp;

/// What the profile page shows besides the member.
struct Profile {
    authtoken: Option<(Credential, Option<Timestamp>)>,
    sessions: Vec<Session>,
    totp: bool,
    passkeys: Vec<PasskeyRecord>,
    identities: Vec<ExternalIdentity>,
    providers: Vec<IdentityProvider>,
}

impl Web {
    /// `GET /ui/profile`, or the same page after a refused change (`error`).
    pub(super) async fn profile(
        &self,
        console: &Console,
        notice: Option<Notice>,
        error: Refusal,
    ) -> Answer {
        let lk = self.lk();
        let (actor, account, user) = (
            console.actor(),
            console.session.account,
            console.session.user,
        );
        let personal = console.member.membership.personal_authtoken;
        let profile = blocking(move || {
            // A member who may not see it (no policy allows) sees the rest of the page.
            let authtoken = match lk.credential(actor, account, personal) {
                Ok(credential) => Some((credential, lk.last_used(personal)?)),
                Err(_) => None,
            };
            Ok(Profile {
                authtoken,
                sessions: lk.sessions_of(user)?,
                totp: lk.totp_on(user)?,
                passkeys: lk.passkeys(user)?,
                identities: lk.external_identities_of(user)?,
                providers: lk.account_providers(account)?,
            })
        })
        .await?;
        let (status, error) = status_of(error);
        Ok(console.render(
            status,
            "My profile",
            profile_page(console, &profile, notice, error.as_deref()),
        ))
    }

    /// `POST /ui/profile/{action}`.
    pub(super) async fn profile_post(
        &self,
        console: &Console,
        action: &str,
        form: &Form,
    ) -> Answer {
        let lk = self.lk();
        let me = console.me();
        let result: Result<Answer, AppOrApi> = match action {
            "name" => {
                let name = form.get("name").to_owned();
                blocking(move || lk.rename_self(me, &name))
                    .await
                    .map(|_| done("/ui/profile", Notice::Renamed))
            }
            "password" => {
                let current = zeroize::Zeroizing::new(form.get("current_password").to_owned());
                let new = zeroize::Zeroizing::new(form.get("new_password").to_owned());
                if form.get("confirm_password") != new.as_str() {
                    let why = "The two new passwords are not the same.".to_owned();
                    return self
                        .profile(console, None, Some((StatusCode::BAD_REQUEST, why)))
                        .await;
                }
                self.api
                    .password_gate()
                    .run(move || {
                        let current = Some(current.as_str()).filter(|c| !c.is_empty());
                        lk.change_password(me, current, &new)
                    })
                    .await
                    .map_err(AppOrApi::Api)
                    .map(|()| done("/ui/profile", Notice::PasswordChanged))
            }
            "totp" => blocking(move || lk.enroll_totp(me))
                .await
                .map(|enrollment| {
                    Ok(console.render(
                        StatusCode::OK,
                        "Set up two-factor authentication",
                        enroll_page(
                            console.csrf(),
                            enrollment.qr_png_base64.expose(),
                            &totp_secret(enrollment.otpauth_uri.expose()),
                        ),
                    ))
                }),
            "totp-confirm" => {
                let code = form.get("code").trim().to_owned();
                blocking(move || lk.confirm_totp(me, &code))
                    .await
                    .map(|codes| {
                        let codes: Vec<&str> = codes.iter().map(|c| c.expose()).collect();
                        Ok(console.render(
                            StatusCode::OK,
                            "Your recovery codes",
                            recovery_page(&codes),
                        ))
                    })
            }
            "totp-disable" => {
                let code = form.get("code").trim().to_owned();
                blocking(move || {
                    let factor = if code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit()) {
                        SecondFactor::Code(&code)
                    } else {
                        SecondFactor::Recovery(&code)
                    };
                    lk.disable_totp(me, factor)
                })
                .await
                .map(|()| done("/ui/profile", Notice::TotpDisabled))
            }
            "authtoken" => {
                let (_, actor, account) = self.acting(console);
                let personal = console.member.membership.personal_authtoken;
                blocking(move || lk.rotate_credential(actor, account, personal))
                    .await
                    .map(|(credential, secret)| {
                        Ok(console.render(
                            StatusCode::OK,
                            "Your new personal authtoken",
                            super::pages::secret_once(
                                "authtoken",
                                &credential.id.to_string(),
                                secret.expose(),
                                "/ui/profile",
                            ),
                        ))
                    })
            }
            "passkey-add" | "passkey-remove" => self.passkey_post(console, action, form).await,
            "disconnect" => match form.get("identity_id").parse() {
                Ok(id) => blocking(move || lk.unlink_external_identity(me, id))
                    .await
                    .map(|()| done("/ui/profile", Notice::Disconnected)),
                Err(e) => Err(AppOrApi::App(e.into())),
            },
            "sessions" => blocking(move || lk.logout_others(me))
                .await
                .map(|_| done("/ui/profile", Notice::SessionsEnded)),
            _ => return Err(not_found()),
        };
        match result {
            Ok(answer) => answer,
            Err(refused) => {
                let (status, why) = refused.explain();
                self.profile(console, None, Some((status, why))).await
            }
        }
    }
}

/// The base32 secret inside an `otpauth://` URI (shown for typing in by hand).
fn totp_secret(uri: &str) -> String {
    let query = uri.split_once('?').map_or("", |(_, q)| q);
    let secret = form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "secret")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    // Groups of four, as authenticator apps print them.
    secret
        .as_bytes()
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

fn profile_page(
    console: &Console,
    profile: &Profile,
    notice: Option<Notice>,
    error: Option<&str>,
) -> Markup {
    let csrf = console.csrf();
    let member = &console.member;
    let enrolling = console.session.enrollment_only;
    html! {
        (notice_line(notice))
        (error_line(error))
        @if enrolling {
            p.notice role="status" { "This account requires two-factor authentication: set it up to continue." }
        } @else {
            section aria-labelledby="details" {
                h2 #details { "Details" }
                form method="post" action="/ui/profile/name" {
                    (csrf_field(csrf))
                    label for="email" { "Email" }
                    input #email type="email" value=(member.user.email.as_str()) readonly;
                    label for="name" { "Name" }
                    input #name type="text" name="name" value=(member.user.name) autocomplete="name" required;
                    button type="submit" { "Save name" }
                }
            }
            section aria-labelledby="password-heading" {
                h2 #password-heading { "Password" }
                form method="post" action="/ui/profile/password" {
                    (csrf_field(csrf))
                    label for="current_password" { "Current password" }
                    input #current_password type="password" name="current_password" autocomplete="current-password";
                    label for="new_password" { "New password" }
                    input #new_password type="password" name="new_password" autocomplete="new-password" minlength="12" required;
                    label for="confirm_password" { "The same again" }
                    input #confirm_password type="password" name="confirm_password" autocomplete="new-password" minlength="12" required;
                    button type="submit" { "Change password" }
                }
            }
        }
        section aria-labelledby="totp" {
            h2 #totp { "Two-factor authentication" }
            @if profile.totp {
                p { "On: signing in asks for a code from your authenticator app." }
                form method="post" action="/ui/profile/totp-disable" {
                    (csrf_field(csrf))
                    label for="disable_code" { "A current code (or a recovery code) to turn it off" }
                    input #disable_code type="text" name="code" inputmode="numeric" autocomplete="one-time-code" required;
                    button.danger type="submit" { "Turn off" }
                }
            } @else {
                p { "Off. With it on, signing in also asks for a code from an authenticator app (or a passkey, below)." }
                (button_form(csrf, "/ui/profile/totp", "Set up two-factor authentication", ""))
            }
        }
        (super::passkeys::profile_section(csrf, &profile.passkeys))
        @if !enrolling && (!profile.providers.is_empty() || !profile.identities.is_empty()) {
            (sso_section(csrf, &profile.identities, &profile.providers))
        }
        @if !enrolling {
            @if let Some((credential, used)) = &profile.authtoken {
                section aria-labelledby="authtoken" {
                    h2 #authtoken { "Personal authtoken" }
                    dl {
                        dt { "Id" } dd { code { (credential.id.to_string()) } }
                        dt { "Made" } dd { (when(credential.created_at)) }
                        dt { "Last used" } dd { (used.map_or_else(|| "never".to_owned(), when)) }
                    }
                    p { "Rotating makes a new token, shown once; the old one stops working at once." }
                    (button_form(csrf, "/ui/profile/authtoken", "Rotate authtoken", ""))
                }
            }
            section aria-labelledby="sessions" {
                h2 #sessions { "Sessions" }
                div.scroll {
                    table {
                        thead { tr { th { "Started" } th { "From" } th { "Account" } th { "Ends" } th { span.visually-hidden { "This session" } } } }
                        tbody {
                            @for session in &profile.sessions {
                                tr {
                                    td { (when(session.created_at)) }
                                    td { (session.source_ip.as_deref().unwrap_or("unknown")) }
                                    td { code { (session.account.to_string()) } }
                                    td { (when(session.expires_at)) }
                                    td { @if session.id == console.session.id { "this session" } }
                                }
                            }
                        }
                    }
                }
                @if profile.sessions.len() > 1 {
                    (button_form(csrf, "/ui/profile/sessions", "Sign out of other sessions", ""))
                }
            }
        }
    }
}

/// Single sign-on: the identities connected to this user, and the account's providers
/// to connect (each signs in there once; what comes back is linked to this user).
fn sso_section(
    csrf: &str,
    identities: &[ExternalIdentity],
    providers: &[IdentityProvider],
) -> Markup {
    let name_of = |id| {
        providers
            .iter()
            .find(|p| p.id == id)
            .map_or("a provider of another account", |p| p.name.as_str())
    };
    html! {
        section aria-labelledby="sso" {
            h2 #sso { "Single sign-on" }
            @if !identities.is_empty() {
                div.scroll {
                    table {
                        thead { tr { th { "Provider" } th { "As" } th { "Connected" } th { "Last used" } th { span.visually-hidden { "Disconnect" } } } }
                        tbody {
                            @for identity in identities {
                                tr {
                                    td { (name_of(identity.provider)) }
                                    td { (identity.email) " " code { (identity.subject) } }
                                    td { (when(identity.created_at)) }
                                    td { (identity.last_login_at.map_or_else(|| "never".to_owned(), when)) }
                                    td {
                                        @if providers.iter().any(|p| p.id == identity.provider) {
                                            form.inline method="post" action="/ui/profile/reconfirm" {
                                                (csrf_field(csrf))
                                                input type="hidden" name="provider_id" value=(identity.provider.to_string());
                                                button type="submit" { "Confirm it is you through " (name_of(identity.provider)) }
                                            }
                                        }
                                        form.inline method="post" action="/ui/profile/disconnect" {
                                            (csrf_field(csrf))
                                            input type="hidden" name="identity_id" value=(identity.id.to_string());
                                            button.danger type="submit" { "Disconnect " (name_of(identity.provider)) }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            @for provider in providers.iter().filter(|p| !identities.iter().any(|i| i.provider == p.id)) {
                form.inline method="post" action="/ui/profile/connect" {
                    (csrf_field(csrf))
                    input type="hidden" name="provider_id" value=(provider.id.to_string());
                    button type="submit" { "Connect " (provider.name) }
                }
            }
        }
    }
}

/// The enrollment step: the QR code, the secret as text, and the first code.
fn enroll_page(csrf: &str, qr_png_base64: &str, secret: &str) -> Markup {
    html! {
        ol {
            li { "Scan this code with an authenticator app (or type the secret in)." }
            li { "Enter the 6-digit code it shows." }
        }
        img.qr src=(format!("data:image/png;base64,{qr_png_base64}")) alt="QR code of your two-factor secret" width="240" height="240";
        p { "Secret: " code.secret { (secret) } }
        form method="post" action="/ui/profile/totp-confirm" {
            (csrf_field(csrf))
            label for="code" { "Code" }
            input #code type="text" name="code" inputmode="numeric" autocomplete="one-time-code" pattern="[0-9 ]{6,7}" required autofocus;
            button type="submit" { "Turn on" }
        }
    }
}

/// The recovery codes, shown this once, with a download.
fn recovery_page(codes: &[&str]) -> Markup {
    let text = codes.join("\n") + "\n";
    let href = format!(
        "data:text/plain;charset=utf-8,{}",
        form_urlencoded::byte_serialize(text.as_bytes())
            .collect::<String>()
            .replace('+', "%20")
    );
    html! {
        p.notice role="status" { "Two-factor authentication is on." }
        p { "Keep these recovery codes somewhere safe: each signs you in once if you lose your authenticator. They are shown only now." }
        ul.codes { @for code in codes { li { code { (code) } } } }
        p { a.button download="latchkey-recovery-codes.txt" href=(href) { "Download the codes" } }
        p { a href="/ui/profile" { "Done" } }
    }
}
