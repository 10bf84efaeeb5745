//! The dashboard's pages, as maud templates compiled into the binary: every value is
//! escaped by the template, and nothing runs in the browser.

use maud::{DOCTYPE, Markup, html};

use crate::app::Member;
use crate::domain::id::AccountId;
use crate::domain::session::Session;

/// The frame of every page.
fn layout(title: &str, signed_in: bool, csrf: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · latchkey" }
                link rel="stylesheet" href="/ui/static/app.css";
            }
            body {
                header {
                    a.brand href="/ui/" { "latchkey" }
                    @if signed_in {
                        form method="post" action="/ui/sign-out" {
                            input type="hidden" name="csrf" value=(csrf);
                            button type="submit" { "Sign out" }
                        }
                    }
                }
                main { h1 { (title) } (body) }
            }
        }
    }
}

/// An error line above a form, when there is one.
fn error_line(error: Option<&str>) -> Markup {
    html! {
        @if let Some(error) = error {
            p.error role="alert" { (error) }
        }
    }
}

/// Email and password.
pub fn sign_in(csrf: &str, error: Option<&str>, email: &str) -> Markup {
    layout(
        "Sign in",
        false,
        csrf,
        html! {
            (error_line(error))
            form method="post" action="/ui/sign-in" {
                input type="hidden" name="csrf" value=(csrf);
                label for="email" { "Email" }
                input #email type="email" name="email" value=(email) autocomplete="username" required autofocus;
                label for="password" { "Password" }
                input #password type="password" name="password" autocomplete="current-password" required;
                button type="submit" { "Sign in" }
            }
        },
    )
}

/// The second factor: a TOTP code or a recovery code.
pub fn second_factor(csrf: &str, error: Option<&str>) -> Markup {
    layout(
        "Two-factor authentication",
        false,
        csrf,
        html! {
            (error_line(error))
            p { "Enter the 6-digit code from your authenticator app, or one of your recovery codes." }
            form method="post" action="/ui/sign-in/code" {
                input type="hidden" name="csrf" value=(csrf);
                label for="code" { "Code" }
                input #code type="text" name="code" inputmode="numeric" autocomplete="one-time-code" required autofocus;
                button type="submit" { "Verify" }
            }
            p { a href="/ui/sign-in" { "Start again" } }
        },
    )
}

/// The account picker of a member of several accounts.
pub fn choose_account(csrf: &str, accounts: &[(AccountId, String)]) -> Markup {
    layout(
        "Choose an account",
        false,
        csrf,
        html! {
            p { "You are a member of several accounts. Which one do you want to sign in to?" }
            @for (id, name) in accounts {
                form.choice method="post" action="/ui/sign-in/account" {
                    input type="hidden" name="csrf" value=(csrf);
                    input type="hidden" name="account_id" value=(id.to_string());
                    button type="submit" { (name) }
                }
            }
        },
    )
}

/// The signed-in home: who, where, and until when.
pub fn home(member: &Member, session: &Session, csrf: &str) -> Markup {
    let roles = &member.membership.roles;
    layout(
        "Home",
        true,
        csrf,
        html! {
            dl {
                dt { "Signed in as" } dd { (member.user.name) " (" (member.user.email.as_str()) ")" }
                dt { "Account" } dd { code { (session.account.to_string()) } }
                dt { "Roles" } dd {
                    @if roles.admin { "administrator" } @else {
                        "developer " (format!("{:?}", roles.developer).to_lowercase())
                        ", team " (format!("{:?}", roles.team).to_lowercase())
                        ", billing " (format!("{:?}", roles.billing).to_lowercase())
                    }
                }
                dt { "Two-factor authentication" } dd { @if member.mfa_enrolled { "on" } @else { "off" } }
                dt { "Session ends" } dd { (session.expires_at.to_rfc3339()) }
            }
        },
    )
}

/// A new password, from a one-time link.
pub fn new_password(csrf: &str, error: Option<&str>) -> Markup {
    layout(
        "Set your password",
        false,
        csrf,
        html! {
            (error_line(error))
            p { "At least 12 characters; a few unrelated words make a strong one." }
            form method="post" action="/ui/reset-password" {
                input type="hidden" name="csrf" value=(csrf);
                label for="new_password" { "New password" }
                input #new_password type="password" name="new_password" autocomplete="new-password" minlength="12" required autofocus;
                label for="confirm_password" { "The same again" }
                input #confirm_password type="password" name="confirm_password" autocomplete="new-password" minlength="12" required;
                button type="submit" { "Set password" }
            }
        },
    )
}

/// A page that says something went well, with the way to sign in.
pub fn message_ok(title: &str, text: &str) -> Markup {
    layout(
        title,
        false,
        "",
        html! {
            p role="status" { (text) }
            p { a href="/ui/sign-in" { "Sign in" } }
        },
    )
}

/// A page that only says something (a refusal, a missing page).
pub fn message(title: &str, text: &str) -> Markup {
    layout(
        title,
        false,
        "",
        html! {
            p.error role="alert" { (text) }
            p { a href="/ui/" { "Back to the dashboard" } }
        },
    )
}
