//! Credentials: API keys (scopes, allowed networks, expiry, last use), authtokens (bind
//! rules, networks) and SSH public keys (pasted, shown by fingerprint). A new API key or
//! authtoken's secret is in the answer to the post that made it, once, with a copy
//! button; nothing keeps it.

use std::collections::HashMap;

use hyper::StatusCode;
use maud::{Markup, html};

use super::console::Console;
use super::pages::{button_form, csrf_field, error_line, notice_line, secret_once, when};
use super::{
    Answer, AppOrApi, Form, Notice, Refusal, Web, blocking, done, not_found, query_value, status_of,
};
use crate::domain::credential::{Credential, CredentialId, CredentialKind, CredentialSpec, Owner};
use crate::domain::id::RawId;
use crate::domain::time::Timestamp;
use crate::domain::token::TokenKind;
use crate::store::PageRequest;

/// Rows per page.
const PAGE: usize = 50;

/// The three kinds, as the dashboard's paths name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    ApiKeys,
    Authtokens,
    SshKeys,
}

impl Kind {
    const ALL: [Kind; 3] = [Kind::ApiKeys, Kind::Authtokens, Kind::SshKeys];

    pub fn from_slug(slug: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.slug() == slug)
    }

    fn slug(self) -> &'static str {
        match self {
            Kind::ApiKeys => "api-keys",
            Kind::Authtokens => "authtokens",
            Kind::SshKeys => "ssh-keys",
        }
    }

    fn title(self) -> &'static str {
        match self {
            Kind::ApiKeys => "API keys",
            Kind::Authtokens => "Authtokens",
            Kind::SshKeys => "SSH public keys",
        }
    }

    /// The API resource, as the policies' actions name it.
    fn resource(self) -> &'static str {
        match self {
            Kind::ApiKeys => "api_keys",
            Kind::Authtokens => "credentials",
            Kind::SshKeys => "ssh_credentials",
        }
    }

    fn credential_kind(self) -> CredentialKind {
        match self {
            Kind::ApiKeys => CredentialKind::ApiKey,
            Kind::Authtokens => CredentialKind::Authtoken,
            Kind::SshKeys => CredentialKind::SshKey,
        }
    }

    fn token_kind(self) -> Option<TokenKind> {
        match self {
            Kind::ApiKeys => Some(TokenKind::ApiKey),
            Kind::Authtokens => Some(TokenKind::Authtoken),
            Kind::SshKeys => None,
        }
    }

    pub fn path(self) -> String {
        format!("/ui/credentials/{}", self.slug())
    }
}

/// The first kind the member may list (the navigation's link).
pub(super) fn first_visible(console: &Console) -> Option<Kind> {
    Kind::ALL
        .into_iter()
        .find(|k| console.may(&format!("{}.list", k.resource())))
}

/// Who may own a new credential, and the names of owners, as the member may see them.
#[derive(Default)]
struct Owners {
    /// Owner id → name.
    names: HashMap<String, String>,
    /// The choices of the owner field: (id, label).
    choices: Vec<(String, String)>,
}

/// One page of credentials and what its form needs.
struct Listing {
    items: Vec<(Credential, Option<Timestamp>)>,
    next: Option<String>,
    owners: Owners,
}

/// Lines (or commas) of a text area, trimmed, without the empty ones.
fn lines(text: &str) -> Vec<String> {
    text.split(['\n', ','])
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

impl Web {
    /// `GET /ui/credentials/{kind}`.
    pub(super) async fn credentials(
        &self,
        console: &Console,
        kind: Kind,
        query: Option<&str>,
        notice: Option<Notice>,
        error: Refusal,
    ) -> Answer {
        let (lk, actor, account) = self.acting(console);
        let before = query_value(query, "before")
            .and_then(|t| t.parse::<CredentialId>().ok())
            .filter(|id| id.kind == kind.credential_kind())
            .map(RawId::raw_id);
        let me = console.session.user;
        let (name, admin) = (
            console.member.user.name.clone(),
            console.member.membership.roles.admin,
        );
        let (see_bots, see_members) = (console.may("bot_users.list"), console.may("users.list"));
        let listing = blocking(move || {
            let page = lk.credentials(
                actor,
                account,
                kind.credential_kind(),
                PageRequest {
                    before,
                    limit: PAGE,
                },
            )?;
            let everyone = PageRequest {
                before: None,
                limit: 200,
            };
            let mut owners = Owners::default();
            owners.names.insert(me.to_string(), name.clone());
            owners
                .choices
                .push((me.to_string(), format!("Me ({name})")));
            if see_members {
                for member in lk.members(actor, account, everyone)?.items {
                    let id = member.user.id.to_string();
                    // Naming another member as owner is for administrators (ngrok).
                    if admin && member.user.id != me {
                        owners.choices.push((id.clone(), member.user.name.clone()));
                    }
                    owners.names.insert(id, member.user.name);
                }
            }
            if see_bots {
                for bot in lk.bots(actor, account, everyone)?.items {
                    let id = bot.id.to_string();
                    owners
                        .choices
                        .push((id.clone(), format!("{} (bot)", bot.name)));
                    owners.names.insert(id, format!("{} (bot)", bot.name));
                }
            }
            let next = page
                .more
                .then(|| page.items.last().map(|(c, _)| c.id.to_string()))
                .flatten();
            Ok(Listing {
                items: page.items,
                next,
                owners,
            })
        })
        .await?;
        let (status, error) = status_of(error);
        Ok(console.render(
            status,
            kind.title(),
            credentials_page(console, kind, &listing, notice, error.as_deref()),
        ))
    }

    /// `POST /ui/credentials/{kind}/new`, `…/{id}/rotate`, `…/{id}/delete`.
    pub(super) async fn credential_post(
        &self,
        console: &Console,
        kind: Kind,
        rest: &[&str],
        form: &Form,
    ) -> Answer {
        let (lk, actor, account) = self.acting(console);
        let made: Result<Answer, AppOrApi> = match rest {
            ["new"] => {
                let owner = match form.get("owner_id") {
                    "" => Owner::User(console.session.user),
                    text => match Owner::parse(text) {
                        Ok(owner) => owner,
                        Err(_) => return Err(not_found()),
                    },
                };
                let expires_at = match form.get("expires") {
                    "" => None,
                    day => {
                        match Timestamp::parse_rfc3339("expires_at", &format!("{day}T23:59:59Z")) {
                            Ok(at) => Some(at),
                            Err(err) => {
                                let why = AppOrApi::App(err.into()).explain();
                                return self
                                    .credentials(console, kind, None, None, Some(why))
                                    .await;
                            }
                        }
                    }
                };
                let spec = CredentialSpec {
                    description: form.get("description").trim().to_owned(),
                    metadata: String::new(),
                    expires_at,
                    acl: lines(form.get("acl")),
                    scopes: lines(form.get("scopes")),
                    allowed_cidrs: lines(form.get("allowed_cidrs")),
                };
                match kind.token_kind() {
                    Some(token) => blocking(move || {
                        lk.create_token_credential(actor, account, token, owner, spec)
                    })
                    .await
                    .map(|(credential, secret)| {
                        Ok(console.render(
                            StatusCode::CREATED,
                            &format!("New {}", singular(kind)),
                            secret_once(
                                singular(kind),
                                &credential.id.to_string(),
                                secret.expose(),
                                &kind.path(),
                            ),
                        ))
                    }),
                    None => {
                        let key = form.get("public_key").trim().to_owned();
                        blocking(move || {
                            lk.create_ssh_credential(actor, account, owner, &key, spec)
                        })
                        .await
                        .map(|_| done(&kind.path(), Notice::SshKeyAdded))
                    }
                }
            }
            [id, action @ ("rotate" | "delete")] => {
                let Some(id) = id
                    .parse::<CredentialId>()
                    .ok()
                    .filter(|id| id.kind == kind.credential_kind())
                else {
                    return Err(not_found());
                };
                if *action == "delete" {
                    blocking(move || lk.delete_credential(actor, account, id))
                        .await
                        .map(|()| done(&kind.path(), Notice::CredentialDeleted))
                } else {
                    blocking(move || lk.rotate_credential(actor, account, id))
                        .await
                        .map(|(credential, secret)| {
                            Ok(console.render(
                                StatusCode::OK,
                                &format!("Rotated {}", singular(kind)),
                                secret_once(
                                    singular(kind),
                                    &credential.id.to_string(),
                                    secret.expose(),
                                    &kind.path(),
                                ),
                            ))
                        })
                }
            }
            _ => return Err(not_found()),
        };
        match made {
            Ok(answer) => answer,
            Err(refused) => {
                self.credentials(console, kind, None, None, Some(refused.explain()))
                    .await
            }
        }
    }
}

fn singular(kind: Kind) -> &'static str {
    match kind {
        Kind::ApiKeys => "API key",
        Kind::Authtokens => "authtoken",
        Kind::SshKeys => "SSH key",
    }
}

fn list_text(items: impl IntoIterator<Item = String>) -> Markup {
    let items: Vec<String> = items.into_iter().collect();
    html! {
        @if items.is_empty() { span.muted { "any" } } @else {
            @for (i, item) in items.iter().enumerate() {
                @if i > 0 { br; }
                code { (item) }
            }
        }
    }
}

fn credentials_page(
    console: &Console,
    kind: Kind,
    listing: &Listing,
    notice: Option<Notice>,
    error: Option<&str>,
) -> Markup {
    let csrf = console.csrf();
    let resource = kind.resource();
    let (may_delete, may_rotate) = (
        console.may(&format!("{resource}.delete")),
        kind == Kind::Authtokens && console.may("credentials.rotate"),
    );
    html! {
        nav.tabs aria-label="Credential kinds" {
            @for other in Kind::ALL {
                @if console.may(&format!("{}.list", other.resource())) {
                    a href=(other.path()) aria-current=[(other == kind).then_some("page")] { (other.title()) }
                }
            }
        }
        (notice_line(notice))
        (error_line(error))
        div.scroll {
            table {
                thead { tr {
                    th { "Credential" } th { "Owner" }
                    @match kind {
                        Kind::ApiKeys => { th { "Scopes" } th { "Networks" } }
                        Kind::Authtokens => { th { "Bind rules" } th { "Networks" } }
                        Kind::SshKeys => { th { "Fingerprint" } th { "Bind rules" } }
                    }
                    th { "Expires" } th { "Last used" } th { span.visually-hidden { "Actions" } }
                } }
                tbody {
                    @for (credential, used) in &listing.items {
                        @let id = credential.id.to_string();
                        tr {
                            td {
                                @if credential.description.is_empty() { code { (id) } } @else {
                                    (credential.description) br; small { code { (id) } }
                                }
                                @if credential.personal { br; small { "personal authtoken" } }
                            }
                            td { (owner_name(&listing.owners, credential.owner)) }
                            @match kind {
                                Kind::ApiKeys => {
                                    td { (list_text(credential.scopes.iter().map(ToString::to_string))) }
                                    td { (list_text(credential.allowed_cidrs.iter().map(ToString::to_string))) }
                                }
                                Kind::Authtokens => {
                                    td { (list_text(credential.acl.rules().iter().cloned())) }
                                    td { (list_text(credential.allowed_cidrs.iter().map(ToString::to_string))) }
                                }
                                Kind::SshKeys => {
                                    td { code { (credential.ssh_key.as_ref().map(|k| k.fingerprint_string()).unwrap_or_default()) } }
                                    td { (list_text(credential.acl.rules().iter().cloned())) }
                                }
                            }
                            td { (credential.expires_at.map_or_else(|| "never".to_owned(), when)) }
                            td { (used.map_or_else(|| "never".to_owned(), when)) }
                            td.actions {
                                @if may_rotate {
                                    (button_form(csrf, &format!("{}/{id}/rotate", kind.path()), "Rotate", "secondary"))
                                }
                                @if may_delete {
                                    (button_form(csrf, &format!("{}/{id}/delete", kind.path()), "Delete", "danger"))
                                }
                            }
                        }
                    }
                }
            }
        }
        @if listing.items.is_empty() { p { "None yet." } }
        @if let Some(next) = &listing.next {
            p { a href=(format!("{}?before={next}", kind.path())) { "Next page" } }
        }
        @if console.may(&format!("{resource}.create")) {
            section aria-labelledby="new-credential" {
                h2 #new-credential { "New " (singular(kind)) }
                form method="post" action=(format!("{}/new", kind.path())) {
                    (csrf_field(csrf))
                    @if kind == Kind::SshKeys {
                        label for="public_key" { "Public key (one line of authorized_keys)" }
                        textarea #public_key name="public_key" rows="3" required placeholder="ssh-ed25519 AAAA… you@host" {}
                    }
                    label for="description" { "Description" }
                    input #description type="text" name="description" maxlength="255";
                    label for="owner_id" { "Owner" }
                    select #owner_id name="owner_id" {
                        @for (id, label) in &listing.owners.choices { option value=(id) { (label) } }
                    }
                    @match kind {
                        Kind::ApiKeys => {
                            label for="scopes" { "Scopes (one action pattern per line, such as iam.bot_users.*; none: all the owner's rights)" }
                            textarea #scopes name="scopes" rows="3" {}
                        }
                        _ => {
                            label for="acl" { "Bind rules (one per line, such as bind:*.example.com; none: any)" }
                            textarea #acl name="acl" rows="3" {}
                        }
                    }
                    @if kind != Kind::SshKeys {
                        label for="allowed_cidrs" { "Allowed networks (one per line, such as 10.0.0.0/8; none: anywhere)" }
                        textarea #allowed_cidrs name="allowed_cidrs" rows="2" {}
                    }
                    label for="expires" { "Expires at the end of (UTC; empty: never)" }
                    input #expires type="date" name="expires";
                    button type="submit" { "Create " (singular(kind)) }
                }
            }
        }
    }
}

fn owner_name(owners: &Owners, owner: Owner) -> String {
    let id = owner.id_string();
    owners.names.get(&id).cloned().unwrap_or(id)
}
