//! Account settings (MFA required; single sign-on and provisioning as they stand) and
//! the forgotten-password page of the way in.

use hyper::StatusCode;
use maud::{Markup, html};

use super::console::Console;
use super::pages::{csrf_field, error_line, notice_line, when};
use super::{
    Answer, Form, Notice, Refusal, Web, blocking, done, form_page, not_found, pages, status_of,
};
use crate::domain::account::{Account, Provisioning, SsoMode};

impl Web {
    /// `GET /ui/settings`.
    pub(super) async fn settings(
        &self,
        console: &Console,
        notice: Option<Notice>,
        error: Refusal,
    ) -> Answer {
        let (lk, actor, account) = self.acting(console);
        let (found, seats) = blocking(move || {
            let found = lk.account(actor, account)?;
            let seats = lk.seats_used(actor, account)?;
            Ok((found, seats))
        })
        .await?;
        let (status, error) = status_of(error);
        Ok(console.render(
            status,
            "Account settings",
            settings_page(console, &found, seats, notice, error.as_deref()),
        ))
    }

    /// `POST /ui/settings/mfa`.
    pub(super) async fn settings_post(
        &self,
        console: &Console,
        rest: &[&str],
        form: &Form,
    ) -> Answer {
        if rest != ["mfa"] {
            return Err(not_found());
        }
        let (lk, actor, account) = self.acting(console);
        let required = form.checked("mfa_required");
        match blocking(move || {
            lk.update_account_settings(
                actor,
                account,
                crate::app::SettingsPatch {
                    mfa_required: Some(required),
                    ..Default::default()
                },
            )
        })
        .await
        {
            Ok(_) => done("/ui/settings", Notice::SettingsSaved),
            Err(refused) => self.settings(console, None, Some(refused.explain())).await,
        }
    }

    /// `GET /ui/forgot-password`.
    pub(super) fn forgot_page(&self, headers: &hyper::HeaderMap) -> Answer {
        Ok(form_page(headers, StatusCode::OK, |csrf| {
            pages::forgot_password(csrf, None)
        }))
    }

    /// `POST /ui/forgot-password`: a reset link mailed to the address when someone has
    /// it; the page says the same either way.
    pub(super) fn forgot(
        &self,
        headers: &hyper::HeaderMap,
        form: &Form,
        peer: Option<std::net::IpAddr>,
    ) -> Answer {
        let email = form.get("email").trim().to_owned();
        match self.api.mail_password_reset(email, peer) {
            Ok(()) => Ok(super::page(
                StatusCode::ACCEPTED,
                pages::message_ok(
                    "Check your mail",
                    "If that address belongs to someone here, a link to set a new password is on its way. It works once, for an hour.",
                ),
            )),
            Err(refused) => {
                let why = refused.msg.to_string();
                let mut page = form_page(headers, refused.code.1, |csrf| {
                    pages::forgot_password(csrf, Some(&why))
                });
                *page.status_mut() = refused.code.1;
                Err(Box::new(page))
            }
        }
    }
}

fn settings_page(
    console: &Console,
    account: &Account,
    seats: usize,
    notice: Option<Notice>,
    error: Option<&str>,
) -> Markup {
    let settings = &account.settings;
    html! {
        (notice_line(notice))
        (error_line(error))
        dl {
            dt { "Name" } dd { (account.name) }
            dt { "Id" } dd { code { (account.id.to_string()) } }
            dt { "Made" } dd { (when(account.created_at)) }
            dt { "Seats used" } dd { (seats) }
        }
        section aria-labelledby="security" {
            h2 #security { "Sign-in security" }
            @if console.may("account.update") {
                form method="post" action="/ui/settings/mfa" {
                    (csrf_field(console.csrf()))
                    div.check {
                        input #mfa_required type="checkbox" name="mfa_required" value="on" checked[settings.mfa_required];
                        label for="mfa_required" { "Require two-factor authentication: members without it can only set it up until they do" }
                    }
                    button type="submit" { "Save" }
                }
            } @else {
                p { "Two-factor authentication is " @if settings.mfa_required { "required" } @else { "not required" } " for members." }
            }
        }
        section aria-labelledby="sso" {
            h2 #sso { "Single sign-on and provisioning" }
            dl {
                dt { "Single sign-on" } dd { (match settings.sso_mode { SsoMode::Off => "off: members sign in with a password", SsoMode::Mixed => "mixed: a password or an identity provider", SsoMode::Enforced => "enforced: members sign in through an identity provider only" }) }
                dt { "Provisioning" } dd { (match settings.provisioning { Provisioning::Invitations => "invitations: people join by accepting one", Provisioning::Jit => "Just-in-Time: a first sign-in through an identity provider makes the member", Provisioning::Scim => "SCIM: the identity provider provisions members" }) }
            }
        }
    }
}
