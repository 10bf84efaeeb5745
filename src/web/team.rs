//! Team members (seed 002's page: roles, state, MFA, seats; invite; edit roles; disable,
//! enable, remove, with the credentials a removal revokes named first) and bot users
//! (create, deactivate, activate, delete, their credentials). Granting Administrator
//! asks the member to confirm it is them (its password, or a current code).

use hyper::StatusCode;
use maud::{Markup, html};

use super::console::Console;
use super::pages::{button_form, csrf_field, error_line, notice_line, roles_text, when};
use super::tenancy::{Access, access_section};
use super::{
    Answer, AppOrApi, Form, Notice, Refusal, Web, blocking, done, not_found, query_value, status_of,
};
use crate::app::Member;
use crate::domain::bot::{BotPatch, BotUser};
use crate::domain::credential::{Credential, Owner};
use crate::domain::id::{BotId, RawId, RoleId, TenantId, UserId};
use crate::domain::invitation::Invitation;
use crate::domain::tenancy::{Role, Tenant};
use crate::domain::time::Timestamp;
use crate::domain::user::{BillingRole, DeveloperRole, MemberState, Roles, RolesPatch, TeamRole};
use crate::store::PageRequest;

/// Rows per list page.
const PAGE: usize = 50;

/// The page before `?before=` (an id of the kind listed; anything else is the first page).
fn page_request<I: std::str::FromStr + RawId>(query: Option<&str>) -> PageRequest {
    PageRequest {
        before: query_value(query, "before")
            .and_then(|text| text.parse::<I>().ok())
            .map(RawId::raw_id),
        limit: PAGE,
    }
}

impl Web {
    /// `GET /ui/members`.
    pub(super) async fn members(
        &self,
        console: &Console,
        query: Option<&str>,
        notice: Option<Notice>,
        error: Refusal,
    ) -> Answer {
        let (lk, actor, account) = self.acting(console);
        let page = page_request::<UserId>(query);
        let invitations_visible = console.may("invitations.list");
        let offer_access =
            console.may("invitations.create") && console.may("role_assignments.create");
        let (members, last_logins, seats, invitations, access) = blocking(move || {
            let members = lk.members(actor, account, page)?;
            let ids: Vec<UserId> = members.items.iter().map(|m| m.user.id).collect();
            let last_logins = lk.last_logins(actor, account, &ids)?;
            let seats = lk.seats_used(actor, account).ok();
            let invitations = if invitations_visible {
                lk.invitations(
                    actor,
                    account,
                    Some("pending"),
                    PageRequest {
                        before: None,
                        limit: PAGE,
                    },
                )?
                .items
            } else {
                Vec::new()
            };
            // What an invitation may grant besides account roles: a tenant role.
            let access = if offer_access {
                let all = PageRequest {
                    before: None,
                    limit: 200,
                };
                Some((
                    lk.roles(actor, account)?,
                    lk.tenants(actor, account, all)?.items,
                ))
            } else {
                None
            };
            Ok((members, last_logins, seats, invitations, access))
        })
        .await?;
        let (status, error) = status_of(error);
        let next = members
            .more
            .then(|| members.items.last().map(|m| m.user.id.to_string()))
            .flatten();
        Ok(console.render(
            status,
            "Team members",
            members_page(
                console,
                &MembersView {
                    members: &members.items,
                    last_logins: &last_logins,
                    next: next.as_deref(),
                    seats,
                    invitations: &invitations,
                    access: access.as_ref(),
                },
                notice,
                error.as_deref(),
            ),
        ))
    }

    /// `GET /ui/members/{id}`: one member, its roles, state and credentials.
    pub(super) async fn member_page(
        &self,
        console: &Console,
        id: &str,
        notice: Option<Notice>,
        error: Refusal,
    ) -> Answer {
        let Ok(user) = id.parse::<UserId>() else {
            return Err(not_found());
        };
        let (lk, actor, account) = self.acting(console);
        let (member, credentials) = blocking(move || {
            let member = lk.member(actor, account, user)?;
            let credentials = lk.credentials_of(actor, account, Owner::User(user))?;
            Ok((member, credentials))
        })
        .await?;
        let access = self.access_of(console, Owner::User(user)).await?;
        let (status, error) = status_of(error);
        let title = format!("Member {}", member.user.name);
        let page = Detail {
            credentials: &credentials,
            access: access.as_ref(),
            notice,
            error: error.as_deref(),
        };
        Ok(console.render(status, &title, member_detail(console, &member, &page)))
    }

    /// `POST /ui/members/invite`.
    pub(super) async fn invite(&self, console: &Console, form: &Form) -> Answer {
        let roles = roles_from(form).apply(Roles::default());
        let invited = match self.confirm_if(console, roles.admin, form).await {
            Ok(()) => {
                let (lk, actor, account) = self.acting(console);
                let email = form.get("email").trim().to_owned();
                match tenant_role(form) {
                    Ok(assignments) => {
                        blocking(move || lk.invite(actor, account, &email, roles, assignments))
                            .await
                    }
                    Err(refused) => Err(refused),
                }
            }
            Err(refused) => Err(refused),
        };
        match invited {
            Ok(invited) => {
                let link = self.api.send_invitation(&invited);
                Ok(console.render(
                    StatusCode::CREATED,
                    "Invitation made",
                    invited_page(&invited, link.as_deref()),
                ))
            }
            Err(refused) => {
                self.members(console, None, None, Some(refused.explain()))
                    .await
            }
        }
    }

    /// `POST /ui/members/{id}/{action}`: `roles`, `disable`, `enable`, `remove`, and
    /// `revoke` for a pending invitation (`inv_…`).
    pub(super) async fn member_post(
        &self,
        console: &Console,
        id: &str,
        action: &str,
        form: &Form,
    ) -> Answer {
        if action == "revoke" {
            let Ok(invitation) = id.parse() else {
                return Err(not_found());
            };
            let (lk, actor, account) = self.acting(console);
            return match blocking(move || lk.revoke_invitation(actor, account, invitation)).await {
                Ok(()) => done("/ui/members", Notice::InvitationRevoked),
                Err(refused) => {
                    self.members(console, None, None, Some(refused.explain()))
                        .await
                }
            };
        }
        let Ok(user) = id.parse::<UserId>() else {
            return Err(not_found());
        };
        let (lk, actor, account) = self.acting(console);
        let result: Result<Notice, AppOrApi> = match action {
            "roles" => {
                let patch = roles_from(form);
                match self
                    .confirm_if(console, patch.admin == Some(true), form)
                    .await
                {
                    Ok(()) => blocking(move || lk.update_member_roles(actor, account, user, patch))
                        .await
                        .map(|_| Notice::RolesChanged),
                    Err(refused) => Err(refused),
                }
            }
            "disable" | "enable" => {
                let (state, notice) = if action == "disable" {
                    (MemberState::Disabled, Notice::Disabled)
                } else {
                    (MemberState::Active, Notice::Enabled)
                };
                blocking(move || lk.set_member_state(actor, account, user, state))
                    .await
                    .map(|_| notice)
            }
            "remove" => blocking(move || lk.remove_member(actor, account, user))
                .await
                .map(|()| Notice::Removed),
            "access" | "access-remove" => {
                self.access_post(console, Owner::User(user), action == "access-remove", form)
                    .await
            }
            _ => return Err(not_found()),
        };
        match result {
            Ok(Notice::Removed) => done("/ui/members", Notice::Removed),
            Ok(notice) => done(&format!("/ui/members/{user}"), notice),
            Err(refused) => {
                self.member_page(console, id, None, Some(refused.explain()))
                    .await
            }
        }
    }

    /// Before a sensitive change (granting Administrator, enforcing an IP restriction,
    /// removing a passkey): the member's proof that it is at the
    /// keyboard (its password, or a current code when it has two-factor on).
    pub(super) async fn confirm_if(
        &self,
        console: &Console,
        sensitive: bool,
        form: &Form,
    ) -> Result<(), AppOrApi> {
        if !sensitive {
            return Ok(());
        }
        let proof = zeroize::Zeroizing::new(form.get("confirm").to_owned());
        // A member without a password confirms through its identity provider instead.
        if proof.is_empty() && self.lk().reconfirmed(console.session.id) {
            return Ok(());
        }
        if proof.is_empty() {
            return Err(AppOrApi::App(
                crate::domain::DomainError::invalid(
                    "confirm",
                    "this change needs your password (or a current code) to confirm it is you; without a password, confirm through your identity provider on your profile first",
                )
                .into(),
            ));
        }
        let lk = self.lk();
        let user = console.session.user;
        self.api
            .password_gate()
            .run(move || lk.reauthenticate(user, &proof))
            .await
            .map_err(AppOrApi::Api)
    }

    /// `GET /ui/bots`.
    pub(super) async fn bots(
        &self,
        console: &Console,
        query: Option<&str>,
        notice: Option<Notice>,
        error: Refusal,
    ) -> Answer {
        let (lk, actor, account) = self.acting(console);
        let page = page_request::<BotId>(query);
        let bots = blocking(move || lk.bots(actor, account, page)).await?;
        let (status, error) = status_of(error);
        let next = bots
            .more
            .then(|| bots.items.last().map(|b| b.id.to_string()))
            .flatten();
        Ok(console.render(
            status,
            "Bot users",
            bots_page(
                console,
                &bots.items,
                next.as_deref(),
                notice,
                error.as_deref(),
            ),
        ))
    }

    /// `GET /ui/bots/{id}`.
    pub(super) async fn bot_page(
        &self,
        console: &Console,
        id: &str,
        notice: Option<Notice>,
        error: Refusal,
    ) -> Answer {
        let Ok(bot) = id.parse::<BotId>() else {
            return Err(not_found());
        };
        let (lk, actor, account) = self.acting(console);
        let (found, credentials) = blocking(move || {
            let found = lk.bot(actor, account, bot)?;
            let credentials = lk.credentials_of(actor, account, Owner::Bot(bot))?;
            Ok((found, credentials))
        })
        .await?;
        let access = self.access_of(console, Owner::Bot(bot)).await?;
        let (status, error) = status_of(error);
        let title = format!("Bot user {}", found.name);
        let page = Detail {
            credentials: &credentials,
            access: access.as_ref(),
            notice,
            error: error.as_deref(),
        };
        Ok(console.render(status, &title, bot_detail(console, &found, &page)))
    }

    /// `POST /ui/bots/new`.
    pub(super) async fn create_bot(&self, console: &Console, form: &Form) -> Answer {
        let (lk, actor, account) = self.acting(console);
        let name = form.get("name").trim().to_owned();
        match blocking(move || lk.create_bot(actor, account, &name)).await {
            Ok(bot) => done(&format!("/ui/bots/{}", bot.id), Notice::BotCreated),
            Err(refused) => {
                self.bots(console, None, None, Some(refused.explain()))
                    .await
            }
        }
    }

    /// `POST /ui/bots/{id}/{action}`: `deactivate`, `activate`, `rename`, `delete`.
    pub(super) async fn bot_post(
        &self,
        console: &Console,
        id: &str,
        action: &str,
        form: &Form,
    ) -> Answer {
        let Ok(bot) = id.parse::<BotId>() else {
            return Err(not_found());
        };
        let (lk, actor, account) = self.acting(console);
        if matches!(action, "access" | "access-remove") {
            let changed = self
                .access_post(console, Owner::Bot(bot), action == "access-remove", form)
                .await;
            return match changed {
                Ok(notice) => done(&format!("/ui/bots/{bot}"), notice),
                Err(refused) => {
                    self.bot_page(console, id, None, Some(refused.explain()))
                        .await
                }
            };
        }
        let patch = match action {
            "deactivate" | "activate" => BotPatch {
                name: None,
                active: Some(action == "activate"),
            },
            "rename" => BotPatch {
                name: Some(form.get("name").trim().to_owned()),
                active: None,
            },
            "delete" => {
                return match blocking(move || lk.delete_bot(actor, account, bot)).await {
                    Ok(()) => done("/ui/bots", Notice::BotDeleted),
                    Err(refused) => {
                        self.bot_page(console, id, None, Some(refused.explain()))
                            .await
                    }
                };
            }
            _ => return Err(not_found()),
        };
        match blocking(move || lk.update_bot(actor, account, bot, &patch)).await {
            Ok(_) => done(&format!("/ui/bots/{bot}"), Notice::BotChanged),
            Err(refused) => {
                self.bot_page(console, id, None, Some(refused.explain()))
                    .await
            }
        }
    }
}

/// The tenant role a form chose (an invitation's, a group mapping's): none, or a role in one
/// tenant or all.
pub(super) fn tenant_role(form: &Form) -> Result<Vec<(RoleId, Option<TenantId>)>, AppOrApi> {
    let invalid = |field: &'static str| {
        AppOrApi::App(
            crate::domain::DomainError::invalid(field, "is not one of the choices").into(),
        )
    };
    match form.get("role_id") {
        "" => Ok(Vec::new()),
        role => {
            let role: RoleId = role.parse().map_err(|_| invalid("role_id"))?;
            let tenant = match form.get("tenant_id") {
                "" => None,
                tenant => Some(tenant.parse().map_err(|_| invalid("tenant_id"))?),
            };
            Ok(vec![(role, tenant)])
        }
    }
}

/// The roles a form chose (the fields the role controls post).
pub(super) fn roles_from(form: &Form) -> RolesPatch {
    RolesPatch {
        developer: Some(match form.get("developer") {
            "read_write" => DeveloperRole::ReadWrite,
            _ => DeveloperRole::ReadOnly,
        }),
        team: Some(match form.get("team") {
            "manager" => TeamRole::Manager,
            "invite" => TeamRole::Invite,
            _ => TeamRole::ReadOnly,
        }),
        billing: Some(if form.checked("billing") {
            BillingRole::Access
        } else {
            BillingRole::None
        }),
        admin: Some(form.checked("admin")),
    }
}

/// The role controls, set to `roles`, with the confirmation field granting
/// Administrator needs.
pub(super) fn role_fields(roles: &Roles, prefix: &str) -> Markup {
    let id = |name: &str| format!("{prefix}-{name}");
    html! {
        fieldset {
            legend { "Account roles" }
            label for=(id("developer")) { "Developer" }
            select id=(id("developer")) name="developer" {
                option value="read_write" selected[roles.developer == DeveloperRole::ReadWrite] { "Read/write: create and change credentials, bots, IP policies" }
                option value="read_only" selected[roles.developer == DeveloperRole::ReadOnly] { "Read-only: view, and rotate their own authtoken" }
            }
            label for=(id("team")) { "Team" }
            select id=(id("team")) name="team" {
                option value="read_only" selected[roles.team == TeamRole::ReadOnly] { "Read-only: see members" }
                option value="invite" selected[roles.team == TeamRole::Invite] { "Invite: see and invite members" }
                option value="manager" selected[roles.team == TeamRole::Manager] { "Manager: invite, remove, change roles of non-administrators" }
            }
            div.check {
                input id=(id("billing")) type="checkbox" name="billing" value="on" checked[roles.billing == BillingRole::Access];
                label for=(id("billing")) { "Billing: view and change billing" }
            }
            div.check {
                input id=(id("admin")) type="checkbox" name="admin" value="on" checked[roles.admin];
                label for=(id("admin")) { "Administrator: full control of the account" }
            }
            label for=(id("confirm")) { "Your password (or a current code), only to grant Administrator" }
            input id=(id("confirm")) type="password" name="confirm" autocomplete="current-password";
        }
    }
}

fn state_text(state: MemberState) -> &'static str {
    match state {
        MemberState::Active => "active",
        MemberState::Disabled => "disabled",
    }
}

/// What the members page lists.
struct MembersView<'a> {
    members: &'a [Member],
    /// Each member's last sign-in, in the same order.
    last_logins: &'a [Option<Timestamp>],
    next: Option<&'a str>,
    /// `None` when the member may not read the account.
    seats: Option<usize>,
    invitations: &'a [Invitation],
    /// The roles and tenants an invitation may grant, when the member may grant them.
    access: Option<&'a (Vec<Role>, Vec<Tenant>)>,
}

fn members_page(
    console: &Console,
    view: &MembersView<'_>,
    notice: Option<Notice>,
    error: Option<&str>,
) -> Markup {
    let csrf = console.csrf();
    let MembersView {
        members,
        last_logins,
        next,
        seats,
        invitations,
        access,
    } = *view;
    html! {
        (notice_line(notice))
        (error_line(error))
        @if let Some(seats) = seats { p { "Seats used: " strong { (seats) } } }
        div.scroll {
            table {
                thead { tr { th { "Member" } th { "Roles" } th { "State" } th { "Two-factor" } th { "Last sign-in" } th { "Joined" } } }
                tbody {
                    @for (member, last) in members.iter().zip(last_logins) {
                        tr {
                            td {
                                a href=(format!("/ui/members/{}", member.user.id)) { (member.user.name) }
                                br; small { (member.user.email.as_str()) }
                            }
                            td { (roles_text(&member.membership.roles)) }
                            td { (state_text(member.membership.state)) }
                            td { @if member.mfa_enrolled { "on" } @else { "off" } }
                            td { (last.map_or_else(|| "never".to_owned(), when)) }
                            td { (when(member.membership.joined_at)) }
                        }
                    }
                }
            }
        }
        @if let Some(next) = next { p { a href=(format!("/ui/members?before={next}")) { "Next page" } } }
        @if !invitations.is_empty() {
            h2 { "Pending invitations" }
            div.scroll {
                table {
                    thead { tr { th { "Email" } th { "Roles" } th { "Expires" } th { span.visually-hidden { "Actions" } } } }
                    tbody {
                        @for invitation in invitations {
                            tr {
                                td { (invitation.email.as_str()) }
                                td { (roles_text(&invitation.roles)) }
                                td { (when(invitation.expires_at)) }
                                td {
                                    @if console.may("invitations.delete") {
                                        (button_form(csrf, &format!("/ui/members/{}/revoke", invitation.id), "Revoke", "secondary"))
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        @if console.may("invitations.create") {
            section aria-labelledby="invite" {
                h2 #invite { "Invite a member" }
                form method="post" action="/ui/members/invite" {
                    (csrf_field(csrf))
                    label for="invite-email" { "Email" }
                    input #invite-email type="email" name="email" required;
                    (role_fields(&Roles::default(), "invite"))
                    @if let Some((roles, tenants)) = access {
                        fieldset {
                            legend { "Tenant role (optional)" }
                            label for="invite-role" { "Role" }
                            select #invite-role name="role_id" {
                                option value="" { "None" }
                                @for role in roles { option value=(role.id.to_string()) { (role.name) } }
                            }
                            label for="invite-tenant" { "In tenant" }
                            select #invite-tenant name="tenant_id" {
                                option value="" { "All tenants" }
                                @for tenant in tenants { option value=(tenant.id.to_string()) { (tenant.name) } }
                            }
                        }
                    }
                    button type="submit" { "Invite" }
                }
            }
        }
    }
}

fn credential_rows(credentials: &[Credential]) -> Markup {
    html! {
        @if credentials.is_empty() {
            p { "No credentials." }
        } @else {
            ul {
                @for credential in credentials {
                    li {
                        code { (credential.id.to_string()) }
                        @if !credential.description.is_empty() { " · " (credential.description) }
                        @if credential.personal { " · personal authtoken" }
                    }
                }
            }
        }
    }
}

/// What a member's or bot's page shows besides the principal itself.
struct Detail<'a> {
    credentials: &'a [Credential],
    access: Option<&'a Access>,
    notice: Option<Notice>,
    error: Option<&'a str>,
}

fn member_detail(console: &Console, member: &Member, page: &Detail<'_>) -> Markup {
    let csrf = console.csrf();
    let id = member.user.id;
    let active = member.membership.state == MemberState::Active;
    let credentials = page.credentials;
    html! {
        (notice_line(page.notice))
        (error_line(page.error))
        dl {
            dt { "Email" } dd { (member.user.email.as_str()) }
            dt { "Roles" } dd { (roles_text(&member.membership.roles)) }
            @for grant in &member.grants.grants {
                dt { "Granted by " (grant.source.to_string()) } dd { (roles_text(&grant.roles)) }
            }
            dt { "State" } dd { (state_text(member.membership.state)) }
            dt { "Two-factor" } dd { @if member.mfa_enrolled { "on" } @else { "off" } }
            dt { "Joined" } dd { (when(member.membership.joined_at)) }
        }
        @if console.may("users.update_roles") {
            section aria-labelledby="roles" {
                h2 #roles { "Roles" }
                form method="post" action=(format!("/ui/members/{id}/roles")) {
                    (csrf_field(csrf))
                    @if !member.grants.grants.is_empty() {
                        p { "These are the roles set on the member here. It holds the higher of these and what its groups and identity providers grant (above), which change only there." }
                    }
                    (role_fields(&member.grants.direct, "roles"))
                    button type="submit" { "Save roles" }
                }
            }
        }
        @if let Some(access) = page.access {
            (access_section(console, access, &format!("/ui/members/{id}")))
        }
        section aria-labelledby="credentials" {
            h2 #credentials { "Credentials in this account" }
            (credential_rows(credentials))
        }
        @if active && console.may("users.disable") {
            p { "Disabling keeps the member and its credentials, but none of them work until it is enabled again." }
            (button_form(csrf, &format!("/ui/members/{id}/disable"), "Disable member", "secondary"))
        }
        @if !active && console.may("users.enable") {
            (button_form(csrf, &format!("/ui/members/{id}/enable"), "Enable member", ""))
        }
        @if console.may("users.delete") {
            section aria-labelledby="remove" {
                h2 #remove { "Remove from the account" }
                @if credentials.is_empty() {
                    p { "Removing takes " (member.user.name) " out of this account." }
                } @else {
                    p { "Removing takes " (member.user.name) " out of this account and revokes these credentials:" }
                    (credential_rows(credentials))
                }
                (button_form(csrf, &format!("/ui/members/{id}/remove"), "Remove member", "danger"))
            }
        }
        p { a href="/ui/members" { "All members" } }
    }
}

/// An invitation just made, with its link when the maker may see it (the link a mail
/// carries; it may also be sent by hand).
fn invited_page(invited: &crate::app::Invited, link: Option<&str>) -> Markup {
    html! {
        p.notice role="status" { "An invitation for " strong { (invited.invitation.email.as_str()) } " is made; it is good until " (when(invited.invitation.expires_at)) "." }
        @if let Some(link) = link {
            p { "Send this link to them (a configured mail server has sent it already):" }
            (super::pages::copyable("invitation-link", "The invitation link", link))
        }
        p { a href="/ui/members" { "Back to team members" } }
    }
}

fn bots_page(
    console: &Console,
    bots: &[BotUser],
    next: Option<&str>,
    notice: Option<Notice>,
    error: Option<&str>,
) -> Markup {
    html! {
        (notice_line(notice))
        (error_line(error))
        p { "Bot users act for services and automation, with their own API keys, authtokens and SSH keys." }
        div.scroll {
            table {
                thead { tr { th { "Name" } th { "State" } th { "Made" } } }
                tbody {
                    @for bot in bots {
                        tr {
                            td { a href=(format!("/ui/bots/{}", bot.id)) { (bot.name) } }
                            td { @if bot.active { "active" } @else { "inactive" } }
                            td { (when(bot.created_at)) }
                        }
                    }
                }
            }
        }
        @if let Some(next) = next { p { a href=(format!("/ui/bots?before={next}")) { "Next page" } } }
        @if console.may("bot_users.create") {
            section aria-labelledby="new-bot" {
                h2 #new-bot { "New bot user" }
                form method="post" action="/ui/bots/new" {
                    (csrf_field(console.csrf()))
                    label for="bot-name" { "Name" }
                    input #bot-name type="text" name="name" required;
                    button type="submit" { "Create bot user" }
                }
            }
        }
    }
}

fn bot_detail(console: &Console, bot: &BotUser, page: &Detail<'_>) -> Markup {
    let csrf = console.csrf();
    let id = bot.id;
    let credentials = page.credentials;
    html! {
        (notice_line(page.notice))
        (error_line(page.error))
        dl {
            dt { "Id" } dd { code { (id.to_string()) } }
            dt { "State" } dd { @if bot.active { "active" } @else { "inactive: its credentials do not work" } }
            dt { "Made" } dd { (when(bot.created_at)) }
        }
        @if let Some(access) = page.access {
            (access_section(console, access, &format!("/ui/bots/{id}")))
        }
        section aria-labelledby="credentials" {
            h2 #credentials { "Credentials" }
            (credential_rows(credentials))
        }
        @if console.may("bot_users.update") {
            form method="post" action=(format!("/ui/bots/{id}/rename")) {
                (csrf_field(csrf))
                label for="bot-name" { "Name" }
                input #bot-name type="text" name="name" value=(bot.name) required;
                button type="submit" { "Rename" }
            }
            @if bot.active {
                (button_form(csrf, &format!("/ui/bots/{id}/deactivate"), "Deactivate", "secondary"))
            } @else {
                (button_form(csrf, &format!("/ui/bots/{id}/activate"), "Activate", ""))
            }
        }
        @if console.may("bot_users.delete") {
            section aria-labelledby="delete" {
                h2 #delete { "Delete" }
                @if credentials.is_empty() {
                    p { "Deleting removes " (bot.name) " for good." }
                } @else {
                    p { "Deleting removes " (bot.name) " for good and revokes these credentials:" }
                    (credential_rows(credentials))
                }
                (button_form(csrf, &format!("/ui/bots/{id}/delete"), "Delete bot user", "danger"))
            }
        }
        p { a href="/ui/bots" { "All bot users" } }
    }
}
