//! The dashboard's frames and the pages of the way in, as maud templates compiled into
//! the binary: every value is escaped by the template, and nothing runs in the browser.
//! (The console's pages are beside their handlers, in `profile` and `team`.)

use maud::{DOCTYPE, Markup, html};

use super::Notice;
use super::console::Console;
use crate::domain::federation::IdentityProvider;
use crate::domain::id::AccountId;
use crate::domain::time::Timestamp;

/// The frame of every page: `nav` and the sign-out button for a signed-in member.
fn frame(title: &str, console: Option<&Console>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · latchkey" }
                link rel="stylesheet" href="/ui/static/app.css";
                script src="/ui/static/app.js" defer {}
            }
            body {
                header {
                    a.brand href="/ui/" { "latchkey" }
                    @if let Some(console) = console {
                        nav aria-label="Main" {
                            @for (href, label) in console.nav() {
                                a href=(href) { (label) }
                            }
                        }
                        form method="post" action="/ui/sign-out" {
                            input type="hidden" name="csrf" value=(console.csrf());
                            button type="submit" { "Sign out" }
                        }
                    }
                }
                main { h1 { (title) } (body) }
            }
        }
    }
}

/// The frame of a page of the way in (nobody signed in).
fn layout(title: &str, body: Markup) -> Markup {
    frame(title, None, body)
}

/// The frame of a console page.
pub fn console(console: &Console, title: &str, body: Markup) -> Markup {
    frame(title, Some(console), body)
}

/// An error line above a form, when there is one.
pub fn error_line(error: Option<&str>) -> Markup {
    html! {
        @if let Some(error) = error {
            p.error role="alert" { (error) }
        }
    }
}

/// The notice a change left for its page, when there is one.
pub fn notice_line(notice: Option<Notice>) -> Markup {
    html! {
        @if let Some(notice) = notice {
            p.notice role="status" { (notice.text()) }
        }
    }
}

/// The hidden double-submit field of a form.
pub fn csrf_field(csrf: &str) -> Markup {
    html! { input type="hidden" name="csrf" value=(csrf); }
}

/// A small form that posts one button (with hidden fields), for an action on a row.
pub fn button_form(csrf: &str, action: &str, label: &str, class: &str) -> Markup {
    html! {
        form.inline method="post" action=(action) {
            (csrf_field(csrf))
            button.(class) type="submit" { (label) }
        }
    }
}

/// A time as people read it (UTC, to the minute).
pub fn when(at: Timestamp) -> String {
    let text = at.to_rfc3339();
    match (text.get(..10), text.get(11..16)) {
        (Some(day), Some(time)) => format!("{day} {time} UTC"),
        _ => text,
    }
}

/// Email and password.
pub fn sign_in(
    csrf: &str,
    error: Option<&str>,
    email: &str,
    providers: &[(String, IdentityProvider)],
) -> Markup {
    layout(
        "Sign in",
        html! {
            (error_line(error))
            form method="post" action="/ui/sign-in" {
                (csrf_field(csrf))
                label for="email" { "Email" }
                input #email type="email" name="email" value=(email) autocomplete="username" required autofocus;
                label for="password" { "Password" }
                input #password type="password" name="password" autocomplete="current-password" required;
                button type="submit" { "Sign in" }
            }
            (super::passkeys::passkey_form(csrf, "/ui/sign-in/passkey", "/ui/sign-in/passkey/options", "get", "Sign in with a passkey", html! {}))
            @if !providers.is_empty() {
                section aria-labelledby="sso-heading" {
                    h2 #sso-heading { "Single sign-on" }
                    ul.providers {
                        @for (account, provider) in providers {
                            li {
                                a.button href=(format!("/sso/{}/login", provider.id)) { "Sign in with " (provider.name) }
                                " " span.hint { (account) }
                            }
                        }
                    }
                }
            }
            p { a href="/ui/forgot-password" { "Forgot your password?" } }
        },
    )
}

/// A forgotten password: the email to mail a reset link to.
pub fn forgot_password(csrf: &str, error: Option<&str>) -> Markup {
    layout(
        "Forgot your password?",
        html! {
            (error_line(error))
            p { "Give the email you sign in with: a link to set a new password is mailed there." }
            form method="post" action="/ui/forgot-password" {
                (csrf_field(csrf))
                label for="email" { "Email" }
                input #email type="email" name="email" autocomplete="username" required autofocus;
                button type="submit" { "Send the link" }
            }
            p { a href="/ui/sign-in" { "Back to sign in" } }
        },
    )
}

/// The second factor: a TOTP code or a recovery code, or a passkey (what the user has).
pub fn second_factor(csrf: &str, error: Option<&str>, totp: bool, passkey: bool) -> Markup {
    layout(
        "Two-factor authentication",
        html! {
            (error_line(error))
            @if passkey {
                p { "Confirm with one of your passkeys." }
                (super::passkeys::unavailable_note())
                (super::passkeys::passkey_form(csrf, "/ui/sign-in/code", "/ui/sign-in/code/options", "get", "Use a passkey", html! {}))
            }
            @if totp {
                p { "Enter the 6-digit code from your authenticator app, or one of your recovery codes." }
                form method="post" action="/ui/sign-in/code" {
                    (csrf_field(csrf))
                    label for="code" { "Code" }
                    input #code type="text" name="code" inputmode="numeric" autocomplete="one-time-code" required autofocus;
                    button type="submit" { "Verify" }
                }
            }
            p { a href="/ui/sign-in" { "Start again" } }
        },
    )
}

/// The account picker of a member of several accounts.
pub fn choose_account(csrf: &str, accounts: &[(AccountId, String)]) -> Markup {
    layout(
        "Choose an account",
        html! {
            p { "You are a member of several accounts. Which one do you want to sign in to?" }
            @for (id, name) in accounts {
                form.choice method="post" action="/ui/sign-in/account" {
                    (csrf_field(csrf))
                    input type="hidden" name="account_id" value=(id.to_string());
                    button type="submit" { (name) }
                }
            }
        },
    )
}

/// The signed-in home: who, where, until when, and what to do next.
pub fn home(console: &Console, notice: Option<Notice>) -> Markup {
    let member = &console.member;
    let session = &console.session;
    html! {
        (notice_line(notice))
        dl {
            dt { "Signed in as" } dd { (member.user.name) " (" (member.user.email.as_str()) ")" }
            dt { "Account" } dd { code { (session.account.to_string()) } }
            dt { "Roles" } dd { (roles_text(&member.membership.roles)) }
            dt { "Two-factor authentication" } dd {
                @if member.mfa_enrolled { "on" } @else { "off · " a href="/ui/profile#totp" { "turn it on" } }
            }
            dt { "Session ends" } dd { (when(session.expires_at)) }
        }
    }
}

/// A member's account roles in words.
pub fn roles_text(roles: &crate::domain::user::Roles) -> String {
    use crate::domain::user::{BillingRole, DeveloperRole, TeamRole};
    if roles.admin {
        return "Administrator".to_owned();
    }
    let developer = match roles.developer {
        DeveloperRole::ReadWrite => "Developer read/write",
        DeveloperRole::ReadOnly => "Developer read-only",
    };
    let team = match roles.team {
        TeamRole::Manager => "Team manager",
        TeamRole::Invite => "Team invite",
        TeamRole::ReadOnly => "Team read-only",
    };
    let mut text = format!("{developer}, {team}");
    if roles.billing == BillingRole::Access {
        text.push_str(", Billing");
    }
    text
}

/// An invitation as its link's holder sees it.
pub struct InvitationView<'a> {
    pub account: &'a str,
    pub email: &'a str,
    /// A user with the email exists (it signs in to accept).
    pub exists: bool,
    /// The email of the user signed in in this browser, if one is.
    pub signed_in_as: Option<&'a str>,
    pub expires_at: Timestamp,
}

/// The invitation page: accept as the signed-in user, sign in first, or join as a new
/// person with a name and password.
pub fn invitation(csrf: &str, view: &InvitationView<'_>, error: Option<&str>) -> Markup {
    layout(
        "Join an account",
        html! {
            (error_line(error))
            p { "You are invited to join " strong { (view.account) } " as " strong { (view.email) } ". The invitation is good until " (when(view.expires_at)) "." }
            @if let Some(signed_in) = view.signed_in_as {
                @if signed_in.eq_ignore_ascii_case(view.email) {
                    form method="post" action="/ui/invitation" {
                        (csrf_field(csrf))
                        button type="submit" { "Accept and join " (view.account) }
                    }
                } @else {
                    p.error role="alert" { "You are signed in as " (signed_in) ", but the invitation is for " (view.email) ". Sign out, then open the link again." }
                }
            } @else if view.exists {
                p { "You have a latchkey sign-in already. " a href="/ui/sign-in" { "Sign in" } " as " (view.email) ", then open the link again to accept." }
            } @else {
                form method="post" action="/ui/invitation" {
                    (csrf_field(csrf))
                    label for="name" { "Your name" }
                    input #name type="text" name="name" autocomplete="name" required autofocus;
                    label for="password" { "Choose a password" }
                    input #password type="password" name="password" autocomplete="new-password" minlength="12" required;
                    label for="confirm_password" { "The same again" }
                    input #confirm_password type="password" name="confirm_password" autocomplete="new-password" minlength="12" required;
                    button type="submit" { "Join " (view.account) }
                }
            }
        },
    )
}

/// A new password, from a one-time link.
pub fn new_password(csrf: &str, error: Option<&str>) -> Markup {
    layout(
        "Set your password",
        html! {
            (error_line(error))
            p { "At least 12 characters; a few unrelated words make a strong one." }
            form method="post" action="/ui/reset-password" {
                (csrf_field(csrf))
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
        html! {
            p.error role="alert" { (text) }
            p { a href="/ui/" { "Back to the dashboard" } }
        },
    )
}

/// A sign-in through an identity provider that did not go through, and why.
pub fn sso_refused(why: &str) -> Markup {
    layout(
        "Sign-in refused",
        html! {
            p.error role="alert" { (why) }
            p { a href="/ui/sign-in" { "Back to sign in" } }
        },
    )
}

/// The step from a form's post to a provider: a link that the script follows at once,
/// or the member (a post may not redirect to another origin).
pub fn sso_leave(provider: &str, url: &str) -> Markup {
    layout(
        "Continue",
        html! {
            p role="status" { "Continue at " (provider) " to confirm it is you there." }
            p { a.button href=(url) data-autofollow { "Continue to " (provider) } }
        },
    )
}

/// The step between a provider's cross-site answer and the session it is for: a form
/// that the script posts at once from this origin (so the session cookie goes with it),
/// or the member by its button.
pub fn sso_continue(provider: &str, action: &str, token: &str) -> Markup {
    layout(
        "Finishing",
        html! {
            p role="status" { (provider) " confirmed it is you." }
            form method="post" action=(action) data-autosubmit {
                input type="hidden" name="token" value=(token);
                button type="submit" { "Continue to your profile" }
            }
        },
    )
}

/// A value to copy (a secret shown once, a link): a read-only field, and a copy button
/// that the script shows where it can work (the field can always be selected by hand).
pub fn copyable(id: &str, label: &str, value: &str) -> Markup {
    html! {
        div.copyable {
            input id=(id) type="text" readonly aria-label=(label) value=(value);
            button.copy.secondary type="button" data-copy=(id) hidden { "Copy" }
        }
    }
}

/// A secret made for the member, shown this once (the answer to the post that made it;
/// nothing keeps it).
pub fn secret_once(what: &str, id: &str, secret: &str, back: &str) -> Markup {
    html! {
        p.notice role="status" { "Copy the " (what) " now: it is shown only this once." }
        (copyable("secret", &format!("The new {what}"), secret))
        p { "Id: " code { (id) } }
        p { a href=(back) { "Done" } }
    }
}
