//! `/invitations`: invite by email, the outbox link, revoke, accept.

use super::handlers::{Ctx, RolesBody, required};
use super::mail::{Mail, Mailer};
use super::request::*;
use super::*;
use crate::app::{Acceptor, Invited};
use crate::domain::id::InvitationId;
use crate::domain::invitation::Invitation;
use crate::domain::token::Secret;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct InvitationCreate {
    email: Option<String>,
    roles: Option<RolesBody>,
    role_assignments: Option<Vec<AssignmentBody>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AcceptBody {
    token: Option<String>,
    name: Option<String>,
    password: Option<String>,
}

/// `/invitations/{id}`; `token`, when the viewer may see it, makes the `accept_url`.
fn view(base: &Base, invitation: &Invitation, token: Option<&Secret>, now: Timestamp) -> Value {
    let assignments: Vec<Value> = invitation
        .assignments
        .iter()
        .map(|(role, tenant)| {
            json!({"role_id": role.to_string(), "tenant_id": tenant.map(|t| t.to_string())})
        })
        .collect();
    let mut view = json!({
        "id": invitation.id.to_string(),
        "uri": base.uri(&format!("/invitations/{}", invitation.id)),
        "email": invitation.email.as_str(),
        "roles": invitation.roles,
        "role_assignments": assignments,
        "state": invitation.state_name(now),
        "created_at": invitation.created_at.to_rfc3339(),
        "expires_at": invitation.expires_at.to_rfc3339(),
    });
    if let (Some(token), Some(fields)) = (token, view.as_object_mut()) {
        let url = base.uri(&accept_path(invitation.id, token));
        fields.insert("accept_url".into(), json!(url));
    }
    view
}

fn accept_path(id: InvitationId, token: &Secret) -> String {
    format!("/invitations/{id}/accept?token={}", token.expose())
}

/// The accept link of a new invitation whose token the maker may see, on the
/// appliance's own address (never a request's `Host`), mailed to its person when a mail
/// server is configured.
fn send_invitation(mailer: Option<&Mailer>, link_base: &str, invited: &Invited) -> Option<String> {
    let token = invited.token.as_ref()?;
    let invitation = &invited.invitation;
    let url = format!("{link_base}{}", accept_path(invitation.id, token));
    if let Some(mailer) = mailer {
        let expires = invitation.expires_at.to_rfc3339();
        mailer.send_link(invitation.email.as_str(), Mail::Invitation, &url, &expires);
    }
    Some(url)
}

impl Api {
    /// [`send_invitation`] for the dashboard: the link to show, mailed when it can be.
    pub(crate) fn send_invitation(&self, invited: &Invited) -> Option<String> {
        send_invitation(self.mailer.as_deref(), &self.link_base, invited)
    }
}

impl Ctx {
    pub(super) async fn list_invitations(self) -> Reply {
        let state = self.query.filter("state").map(str::to_owned);
        if let Some(state) = &state
            && !["pending", "accepted", "revoked", "expired"].contains(&state.as_str())
        {
            return Err(ApiError::field(
                error::INVALID_QUERY,
                "state",
                "state must be pending, accepted, revoked or expired",
            ));
        }
        let page = self.page_request::<InvitationId>("/invitations")?;
        let (lk, actor, account) = self.caller();
        let now = self.lk.now();
        let found =
            blocking(move || lk.invitations(actor, account, state.as_deref(), page)).await?;
        self.page_reply(
            "/invitations",
            "invitations",
            &found,
            |i| i.id,
            |i| view(&self.base, i, None, now),
        )
    }

    pub(super) async fn create_invitation(self) -> Reply {
        let body: InvitationCreate = parse(&self.body)?;
        let email = required(body.email.as_deref(), "email")?.to_owned();
        let roles = body
            .roles
            .as_ref()
            .map_or_else(Roles::default, |r| r.patch().apply(Roles::default()));
        let assignments = assignments_of(
            body.role_assignments.as_deref().unwrap_or_default(),
            "role_assignments",
        )?;
        let (lk, actor, account) = self.caller();
        let now = self.lk.now();
        let invited =
            blocking(move || lk.invite(actor, account, &email, roles, assignments)).await?;
        send_invitation(self.mailer.as_deref(), &self.link_base, &invited);
        self.created(&view(
            &self.base,
            &invited.invitation,
            invited.token.as_ref(),
            now,
        ))
    }

    pub(super) async fn get_invitation(self, id: &str) -> Reply {
        let id: InvitationId = path_id(id)?;
        let (lk, actor, account) = self.caller();
        let now = self.lk.now();
        let Invited { invitation, token } =
            blocking(move || lk.invitation(actor, account, id)).await?;
        self.ok(&view(&self.base, &invitation, token.as_ref(), now))
    }

    pub(super) async fn revoke_invitation(self, id: &str) -> Reply {
        let id: InvitationId = path_id(id)?;
        let (lk, actor, account) = self.caller();
        blocking(move || lk.revoke_invitation(actor, account, id)).await?;
        Ok(no_content())
    }
}

impl Api {
    /// `POST /invitations/{id}/accept`: from a session whose user the invitation names,
    /// or, with `name` and `password`, by a new person.
    pub(super) async fn accept_invitation(
        &self,
        id: &str,
        headers: &hyper::HeaderMap,
        body: Bytes,
        base: &Base,
    ) -> Reply {
        let id: InvitationId = path_id(id)?;
        let body: AcceptBody = parse(&body)?;
        let token = required(body.token.as_deref(), "token")?.to_owned();
        let session = match super::session::session_cookie(headers) {
            Some(secret) => {
                let (lk, secret) = (Arc::clone(&self.lk), secret.to_owned());
                Some(blocking(move || lk.session(&secret)).await?)
            }
            None => None,
        };
        let lk = Arc::clone(&self.lk);
        let joined = match session {
            Some(session) => {
                blocking(move || lk.accept_invitation(id, &token, Acceptor::User(session.user)))
                    .await?
            }
            None => {
                let name = required(body.name.as_deref(), "name")?.to_owned();
                let password = required(body.password.as_deref(), "password")?.to_owned();
                self.passwords
                    .run(move || {
                        let acceptor = Acceptor::NewPerson {
                            name: &name,
                            password: &password,
                        };
                        lk.accept_invitation(id, &token, acceptor)
                    })
                    .await?
            }
        };
        Ok(json_response(
            StatusCode::OK,
            &views::member(base, &joined.member),
        ))
    }
}
