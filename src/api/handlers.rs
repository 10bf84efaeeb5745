//! One handler per endpoint, on a request's [`Ctx`], and the bodies they read.

use super::request::*;
use super::*;
use crate::domain::account::{Provisioning, SsoMode};
use crate::domain::id::RawId;
use crate::store::{Page, PageRequest};

/// One `/authorize` answer, written straight to the response (no intermediate map).
#[derive(serde::Serialize)]
struct Answer<'a> {
    decision: &'static str,
    policy: &'a str,
    reason: &'a str,
    /// The time a what-if question was decided at (its `context.time`, echoed).
    #[serde(skip_serializing_if = "Option::is_none")]
    time: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    evaluated: Option<Vec<Evaluated<'a>>>,
    /// With `explain`: the request exactly as the modules saw it (ABI v1, as JSON), to
    /// paste into a decision case.
    #[serde(skip_serializing_if = "Option::is_none")]
    request: Option<&'a latchkey_policy_abi::Request>,
}

/// One consulted policy's own answer, in an explained `/authorize` answer.
#[derive(serde::Serialize)]
struct Evaluated<'a> {
    policy: &'a str,
    decision: &'static str,
    reason: &'a str,
}

/// `/authorize/batch`'s answer.
#[derive(serde::Serialize)]
struct Decisions<'a> {
    decisions: Vec<Answer<'a>>,
}

fn outcome(outcome: crate::policy::Outcome) -> &'static str {
    match outcome {
        crate::policy::Outcome::Allow => "allow",
        crate::policy::Outcome::Deny => "deny",
        crate::policy::Outcome::NotApplicable => "not_applicable",
    }
}

/// One request's context.
pub(super) struct Ctx {
    pub(super) lk: Arc<Latchkey>,
    pub(super) warnings: Arc<Warnings>,
    pub(super) metrics: Arc<metrics::Metrics>,
    pub(super) passwords: Arc<super::session::PasswordGate>,
    pub(super) mailer: Option<Arc<super::mail::Mailer>>,
    /// Where mailed links point (the appliance's own address).
    pub(super) link_base: Arc<str>,
    pub(super) caller: Caller,
    /// The client's address.
    pub(super) peer: Option<std::net::IpAddr>,
    pub(super) base: Base,
    pub(super) query: Query,
    pub(super) body: Bytes,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RolesBody {
    developer: Option<DeveloperRole>,
    team: Option<TeamRole>,
    billing: Option<BillingRole>,
    admin: Option<bool>,
}

impl RolesBody {
    pub(super) fn patch(&self) -> RolesPatch {
        RolesPatch {
            developer: self.developer,
            team: self.team,
            billing: self.billing,
            admin: self.admin,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AccountUpdate {
    mfa_required: Option<bool>,
    sso_mode: Option<String>,
    provisioning: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UserCreate {
    email: String,
    name: Option<String>,
    roles: Option<RolesBody>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UserUpdate {
    name: Option<String>,
    roles: Option<RolesBody>,
    state: Option<MemberState>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BotCreate {
    name: Option<String>,
    active: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BotUpdate {
    id: Option<String>,
    name: Option<String>,
    active: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenCreate {
    description: Option<String>,
    metadata: Option<String>,
    acl: Option<Vec<String>>,
    owner_id: Option<String>,
    expires_at: Option<String>,
    scopes: Option<Vec<String>>,
    allowed_cidrs: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SshCreate {
    description: Option<String>,
    metadata: Option<String>,
    acl: Option<Vec<String>>,
    owner_id: Option<String>,
    public_key: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CredentialUpdate {
    id: Option<String>,
    description: Option<String>,
    metadata: Option<String>,
    acl: Option<Vec<String>>,
    scopes: Option<Vec<String>>,
    allowed_cidrs: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct IpBody {
    id: Option<String>,
    description: Option<String>,
    metadata: Option<String>,
    cidr: Option<String>,
    ip_policy_id: Option<String>,
    action: Option<String>,
    enforced: Option<bool>,
    #[serde(rename = "type")]
    kind: Option<String>,
    ip_policy_ids: Option<Vec<String>>,
    /// latchkey's: make a dashboard restriction even if it refuses the caller's address.
    confirm_lockout: Option<bool>,
}

impl IpBody {
    fn text(&self) -> IpText {
        IpText {
            description: self.description.clone().unwrap_or_default(),
            metadata: self.metadata.clone().unwrap_or_default(),
        }
    }

    fn patch(&self) -> Result<IpPatch, ApiError> {
        Ok(IpPatch {
            description: self.description.clone(),
            metadata: self.metadata.clone(),
            cidr: self.cidr.clone(),
            enforced: self.enforced,
            policies: self.policy_ids()?,
        })
    }

    fn policy_ids(&self) -> Result<Option<Vec<IpPolicyId>>, ApiError> {
        self.ip_policy_ids
            .as_ref()
            .map(|ids| {
                ids.iter()
                    .map(|id| {
                        id.parse::<IpPolicyId>().map_err(|_| {
                            ApiError::field(
                                error::INVALID_FIELD,
                                "ip_policy_ids",
                                format!("{id:?} is not an IP policy id"),
                            )
                        })
                    })
                    .collect()
            })
            .transpose()
    }

    /// Reject fields that do not belong to this resource or operation.
    fn only(&self, allowed: &[&str]) -> Result<(), ApiError> {
        let given = [
            ("cidr", self.cidr.is_some()),
            ("ip_policy_id", self.ip_policy_id.is_some()),
            ("action", self.action.is_some()),
            ("enforced", self.enforced.is_some()),
            ("type", self.kind.is_some()),
            ("ip_policy_ids", self.ip_policy_ids.is_some()),
        ];
        match given
            .iter()
            .find(|(name, set)| *set && !allowed.contains(name))
        {
            Some((name, _)) => Err(ApiError::field(
                error::MALFORMED_BODY,
                name,
                format!("{name} is not a field of this request"),
            )),
            None => Ok(()),
        }
    }
}

/// ngrok's clients repeat the path's id in an update's body; another id there is a 400,
/// never silently ignored.
pub(super) fn same_id(given: Option<&str>, path: impl std::fmt::Display) -> Result<(), ApiError> {
    match given {
        Some(given) if given != path.to_string() => Err(ApiError::field(
            error::INVALID_FIELD,
            "id",
            "id in the body must be the id in the path (or be left out)",
        )),
        _ => Ok(()),
    }
}

pub(super) fn required<'a>(value: Option<&'a str>, field: &str) -> Result<&'a str, ApiError> {
    value
        .ok_or_else(|| ApiError::field(error::INVALID_FIELD, field, format!("{field} is required")))
}

/// One `/authorize` question.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Check {
    principal: CheckPrincipal,
    action: String,
    resource: CheckResource,
    #[serde(default)]
    context: serde_json::Map<String, Value>,
    #[serde(default)]
    explain: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckPrincipal {
    #[serde(default, deserialize_with = "present")]
    id: Option<String>,
    #[serde(default, deserialize_with = "present")]
    token: Option<String>,
}

/// A field that, when given, is a string: `null` is not a way to leave it out (exactly
/// one of `id` and `token` is given).
fn present<'de, D: serde::Deserializer<'de>>(field: D) -> Result<Option<String>, D::Error> {
    String::deserialize(field).map(Some)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckResource {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    id: String,
    tenant_id: Option<String>,
    owner_id: Option<String>,
    #[serde(default)]
    attributes: serde_json::Map<String, Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Batch {
    checks: Vec<Check>,
}

/// At most this many checks in one `/authorize/batch`.
const MAX_BATCH: usize = 100;

/// The longest action `/authorize` takes, in bytes.
const MAX_ACTION: usize = 255;

/// A JSON value as the text a policy sees: strings as they are, anything else as JSON.
fn as_text(value: Value) -> String {
    match value {
        Value::String(text) => text,
        other => other.to_string(),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct VerifyBody {
    token: Option<String>,
    ssh_public_key: Option<String>,
    source_ip: Option<String>,
}

impl Ctx {
    /// Route a request to its handler by method and path segments.
    pub(super) async fn dispatch(self, method: &Method, segments: &[&str], path: &str) -> Reply {
        use Method as M;
        let served = allowed_methods(segments)
            .is_some_and(|allow| allow.split(", ").any(|m| m == method.as_str()));
        if served {
            let (list, accepted) = query_parameters(method, segments);
            self.query.accept(list, accepted)?;
        }
        // The decision routes run here; every other handler's future is boxed, so the
        // size of this one (which each request moves through hyper) is theirs, not that
        // of the largest handler.
        match (method, segments) {
            (&M::POST, ["verify"]) => self.verify().await,
            (&M::POST, ["authorize"]) => self.authorize(false).await,
            (&M::POST, ["authorize", "batch"]) => self.authorize(true).await,
            _ => Box::pin(self.dispatch_rest(method, segments, path)).await,
        }
    }

    /// The routes other than `/verify` and `/authorize`.
    async fn dispatch_rest(self, method: &Method, segments: &[&str], path: &str) -> Reply {
        use Method as M;
        match (method, segments) {
            (&M::GET, ["account"]) => self.get_account().await,
            (&M::PATCH, ["account"]) => self.update_account().await,

            (&M::GET, ["users"]) => self.list_users().await,
            (&M::POST, ["users"]) => self.create_user().await,
            (&M::GET, ["users", id]) => self.get_user(id).await,
            (&M::PATCH, ["users", id]) => self.update_user(id).await,
            (&M::DELETE, ["users", id]) => self.remove_user(id).await,

            (&M::GET, ["bot_users"]) => self.list_bots().await,
            (&M::POST, ["bot_users"]) => self.create_bot().await,
            (&M::GET, ["bot_users", id]) => self.get_bot(id).await,
            (&M::PATCH, ["bot_users", id]) => self.update_bot(id).await,
            (&M::DELETE, ["bot_users", id]) => self.delete_bot(id).await,

            (&M::GET, [kind]) if credential_kind(kind).is_some() => {
                self.list_credentials(credential_kind(kind)).await
            }
            (&M::POST, ["api_keys"]) => self.create_token(TokenKind::ApiKey).await,
            (&M::POST, ["credentials"]) => self.create_token(TokenKind::Authtoken).await,
            (&M::POST, ["ssh_credentials"]) => self.create_ssh().await,
            (&M::GET, [kind, id]) if credential_kind(kind).is_some() => {
                self.get_credential(credential_kind(kind), id).await
            }
            (&M::PATCH, [kind, id]) if credential_kind(kind).is_some() => {
                self.update_credential(credential_kind(kind), id).await
            }
            (&M::DELETE, [kind, id]) if credential_kind(kind).is_some() => {
                self.delete_credential(credential_kind(kind), id).await
            }
            (&M::POST, ["credentials", id, "rotate"]) => self.rotate(id).await,

            (&M::GET, ["ip_policies"]) => self.list_ip_policies().await,
            (&M::POST, ["ip_policies"]) => self.create_ip_policy().await,
            (&M::GET, ["ip_policies", id]) => self.get_ip_policy(id).await,
            (&M::PATCH, ["ip_policies", id]) => self.update_ip_policy(id).await,
            (&M::DELETE, ["ip_policies", id]) => self.delete_ip_policy(id).await,
            (&M::GET, ["ip_policy_rules"]) => self.list_ip_rules().await,
            (&M::POST, ["ip_policy_rules"]) => self.create_ip_rule().await,
            (&M::GET, ["ip_policy_rules", id]) => self.get_ip_rule(id).await,
            (&M::PATCH, ["ip_policy_rules", id]) => self.update_ip_rule(id).await,
            (&M::DELETE, ["ip_policy_rules", id]) => self.delete_ip_rule(id).await,
            (&M::GET, ["ip_restrictions"]) => self.list_ip_restrictions().await,
            (&M::POST, ["ip_restrictions"]) => self.create_ip_restriction().await,
            (&M::GET, ["ip_restrictions", id]) => self.get_ip_restriction(id).await,
            (&M::PATCH, ["ip_restrictions", id]) => self.update_ip_restriction(id).await,
            (&M::DELETE, ["ip_restrictions", id]) => self.delete_ip_restriction(id).await,

            (&M::GET, ["events"]) => self.list_events().await,
            (&M::GET, ["events", id]) => self.get_event(id).await,
            (&M::GET, ["event_destinations"]) => self.list_event_destinations().await,
            (&M::POST, ["event_destinations"]) => self.create_event_destination().await,
            (&M::GET, ["event_destinations", id]) => self.get_event_destination(id).await,
            (&M::PATCH, ["event_destinations", id]) => self.update_event_destination(id).await,
            (&M::DELETE, ["event_destinations", id]) => self.delete_event_destination(id).await,
            (&M::GET, ["identity_providers"]) => self.list_identity_providers().await,
            (&M::POST, ["identity_providers"]) => self.create_identity_provider().await,
            (&M::GET, ["identity_providers", id]) => self.get_identity_provider(id).await,
            (&M::PATCH, ["identity_providers", id]) => self.update_identity_provider(id).await,
            (&M::DELETE, ["identity_providers", id]) => self.delete_identity_provider(id).await,
            (&M::GET, ["scim_tokens"]) => self.list_scim_tokens().await,
            (&M::POST, ["scim_tokens"]) => self.create_scim_token().await,
            (&M::GET, ["scim_tokens", id]) => self.get_scim_token(id).await,
            (&M::DELETE, ["scim_tokens", id]) => self.delete_scim_token(id).await,
            (&M::GET, ["scim_groups"]) => self.list_scim_groups().await,
            (&M::GET, ["scim_groups", id]) => self.get_scim_group(id).await,
            (&M::GET, ["scim_group_mappings"]) => self.list_scim_group_mappings().await,
            (&M::POST, ["scim_group_mappings"]) => self.create_scim_group_mapping().await,
            (&M::GET, ["scim_group_mappings", id]) => self.get_scim_group_mapping(id).await,
            (&M::PATCH, ["scim_group_mappings", id]) => self.update_scim_group_mapping(id).await,
            (&M::DELETE, ["scim_group_mappings", id]) => self.delete_scim_group_mapping(id).await,
            (&M::GET, ["users", id, "effective_permissions"]) => {
                self.effective_permissions(id).await
            }
            (&M::GET, ["policies"]) => self.list_policies().await,
            (&M::GET, ["policies", "events"]) => self.list_policy_events().await,
            (_, ["policies", "reload"]) => Err(ApiError::new(
                error::NO_ROUTE,
                "no such path: the policy set acts for every account, so it is reloaded by the host operator (latchkey policy reload, or SIGHUP), not through the API",
            )),

            (&M::POST, ["logout"]) => self.logout().await,
            (&M::GET, ["invitations"]) => self.list_invitations().await,
            (&M::POST, ["invitations"]) => self.create_invitation().await,
            (&M::GET, ["invitations", id]) => self.get_invitation(id).await,
            (&M::DELETE, ["invitations", id]) => self.revoke_invitation(id).await,
            (&M::POST, ["users", id, "password_reset"]) => self.issue_password_reset(id).await,
            (&M::GET, ["me"]) => self.me().await,
            (&M::PATCH, ["me"]) => self.update_me().await,
            (&M::POST, ["me", "email_verification"]) => self.request_email_proof().await,
            (&M::POST, ["me", "password"]) => self.change_password().await,
            (&M::POST, ["me", "mfa", "totp"]) => self.enroll_totp().await,
            (&M::POST, ["me", "mfa", "totp", "confirm"]) => self.confirm_totp().await,
            (&M::DELETE, ["me", "mfa", "totp"]) => self.disable_totp().await,

            (&M::GET, ["tenants"]) => self.list_tenants().await,
            (&M::POST, ["tenants"]) => self.create_tenant().await,
            (&M::GET, ["tenants", id]) => self.get_tenant(id).await,
            (&M::PATCH, ["tenants", id]) => self.update_tenant(id).await,
            (&M::DELETE, ["tenants", id]) => self.delete_tenant(id).await,
            (&M::GET, ["permissions"]) => self.list_permissions().await,
            (&M::POST, ["permissions"]) => self.add_permission().await,
            (&M::GET, ["permissions", name]) => self.get_permission(name).await,
            (&M::DELETE, ["permissions", name]) => self.remove_permission(name).await,
            (&M::GET, ["roles"]) => self.list_roles().await,
            (&M::POST, ["roles"]) => self.create_role().await,
            (&M::GET, ["roles", id]) => self.get_role(id).await,
            (&M::PATCH, ["roles", id]) => self.update_role(id).await,
            (&M::DELETE, ["roles", id]) => self.delete_role(id).await,
            (&M::GET, ["role_assignments"]) => self.list_role_assignments().await,
            (&M::POST, ["role_assignments"]) => self.create_role_assignment().await,
            (&M::GET, ["role_assignments", id]) => self.get_role_assignment(id).await,
            (&M::DELETE, ["role_assignments", id]) => self.delete_role_assignment(id).await,
            (&M::GET, ["access_review"]) => self.access_review().await,

            (_, segments) if let Some(allow) = allowed_methods(segments) => {
                Err(method_not_allowed(allow))
            }
            _ => Err(ApiError::new(
                error::NO_ROUTE,
                format!("no such path: {path}"),
            )),
        }
    }

    /// The lockout guard of an IP restriction change by this request.
    fn lockout(&self, body: &IpBody) -> Lockout {
        Lockout {
            from: self.peer,
            confirmed: body.confirm_lockout == Some(true),
        }
    }

    pub(super) fn ok(&self, value: &Value) -> Reply {
        Ok(json_response(StatusCode::OK, value))
    }

    pub(super) fn created(&self, value: &Value) -> Reply {
        Ok(json_response(StatusCode::CREATED, value))
    }

    /// A list page in the contract's shape, under the resource's list field. A
    /// `before_id` that is not an id of the listed objects is a 400, never the first page.
    pub(super) fn list<T, I>(
        &self,
        path: &str,
        field: &str,
        items: Vec<T>,
        id: impl Fn(&T) -> I,
        view: impl Fn(&T) -> Value,
    ) -> Reply
    where
        I: std::str::FromStr + std::fmt::Display + Ord,
    {
        let before = self.before_id::<I>(path)?;
        let (items, next) = page(items, id, before, self.query.limit);
        self.reply_list(path, field, &items, next, view)
    }

    /// The `before_id` of the query, as an id of the listed objects.
    pub(super) fn before_id<I: std::str::FromStr>(
        &self,
        path: &str,
    ) -> Result<Option<I>, ApiError> {
        self.query
            .before_id
            .as_deref()
            .map(|text| {
                text.parse::<I>().map_err(|_| {
                    ApiError::field(
                        error::INVALID_QUERY,
                        "before_id",
                        format!("before_id is not the id of an object of {path}"),
                    )
                })
            })
            .transpose()
    }

    /// The page the query asks for: before its `before_id` (an id of the listed kind,
    /// else a 400), at most `limit`.
    pub(super) fn page_request<I>(&self, path: &str) -> Result<PageRequest, ApiError>
    where
        I: std::str::FromStr + RawId,
    {
        Ok(PageRequest {
            before: self.before_id::<I>(path)?.map(RawId::raw_id),
            limit: self.query.limit,
        })
    }

    /// A page cut by an index, in the contract's shape: its items under the list field,
    /// and `next_page_uri` (before the last item) when more follow.
    pub(super) fn page_reply<T, I: std::fmt::Display>(
        &self,
        path: &str,
        field: &str,
        page: &Page<T>,
        id: impl Fn(&T) -> I,
        view: impl Fn(&T) -> Value,
    ) -> Reply {
        let next = page.items.last().filter(|_| page.more).map(id);
        self.reply_list(path, field, &page.items, next, view)
    }

    fn reply_list<T>(
        &self,
        path: &str,
        field: &str,
        items: &[T],
        next: Option<impl std::fmt::Display>,
        view: impl Fn(&T) -> Value,
    ) -> Reply {
        // The next page keeps the filters of this one.
        let next_page_uri = next.map(|before| {
            let mut query = form_urlencoded::Serializer::new(String::new());
            query
                .append_pair("before_id", &before.to_string())
                .append_pair("limit", &self.query.limit.to_string());
            for (key, value) in &self.query.filters {
                query.append_pair(key, value);
            }
            self.base.uri(&format!("{path}?{}", query.finish()))
        });
        let views: Vec<Value> = items.iter().map(view).collect();
        self.ok(&json!({
            field: views,
            "uri": self.base.uri(path),
            "next_page_uri": next_page_uri,
        }))
    }

    fn owner(&self, owner_id: Option<&str>) -> Result<Owner, ApiError> {
        match owner_id {
            Some(text) => Owner::parse(text).map_err(|_| {
                ApiError::field(
                    error::INVALID_FIELD,
                    "owner_id",
                    format!("{text:?} is not a user or bot user id"),
                )
            }),
            None => match self.caller.actor.principal {
                Principal::User(user) => Ok(Owner::User(user)),
                Principal::Bot(bot) => Ok(Owner::Bot(bot)),
                Principal::System | Principal::ScimToken(_) => Err(ApiError::field(
                    error::INVALID_FIELD,
                    "owner_id",
                    "owner_id is required",
                )),
            },
        }
    }

    async fn get_account(self) -> Reply {
        let (lk, Caller { actor, account, .. }) = (Arc::clone(&self.lk), self.caller);
        let (found, seats) = blocking(move || {
            let found = lk.account(actor, account)?;
            let seats = lk.seats_used(actor, account)?;
            Ok((found, seats))
        })
        .await?;
        self.ok(&views::account(&self.base, &found, seats))
    }

    /// `PATCH /account`: `mfa_required`, `sso_mode`, `provisioning` (`scim` only with
    /// single sign-on configured: never silently stored).
    async fn update_account(self) -> Reply {
        let body: AccountUpdate = parse(&self.body)?;
        let patch = crate::app::SettingsPatch {
            mfa_required: body.mfa_required,
            sso_mode: body.sso_mode.as_deref().map(SsoMode::parse).transpose()?,
            provisioning: body
                .provisioning
                .as_deref()
                .map(Provisioning::parse)
                .transpose()?,
        };
        let (lk, Caller { actor, account, .. }) = (Arc::clone(&self.lk), self.caller);
        let (updated, seats) = blocking(move || {
            let updated = lk.update_account_settings(actor, account, patch)?;
            Ok((updated, lk.seats_used(actor, account)?))
        })
        .await?;
        self.ok(&views::account(&self.base, &updated, seats))
    }

    async fn list_users(self) -> Reply {
        let (lk, Caller { actor, account, .. }) = (Arc::clone(&self.lk), self.caller);
        let page = self.page_request::<UserId>("/users")?;
        let members = blocking(move || lk.members(actor, account, page)).await?;
        self.page_reply(
            "/users",
            "users",
            &members,
            |m| m.user.id,
            |m| views::member(&self.base, m),
        )
    }

    async fn create_user(self) -> Reply {
        let body: UserCreate = parse(&self.body)?;
        let roles = body
            .roles
            .as_ref()
            .map_or_else(Roles::default, |r| r.patch().apply(Roles::default()));
        // Without a name, the address's local part stands in, as for `latchkey init`.
        let name = body.name.unwrap_or_else(|| {
            body.email
                .split('@')
                .next()
                .unwrap_or_default()
                .trim()
                .to_owned()
        });
        let (lk, Caller { actor, account, .. }) = (Arc::clone(&self.lk), self.caller);
        let joined =
            blocking(move || lk.add_member(actor, account, &body.email, &name, roles)).await?;
        // The personal authtoken is the member's own secret: it is not shown to whoever
        // added the member; the member rotates it to get one.
        self.created(&views::member(&self.base, &joined.member))
    }

    async fn get_user(self, id: &str) -> Reply {
        let user: UserId = path_id(id)?;
        let (lk, Caller { actor, account, .. }) = (Arc::clone(&self.lk), self.caller);
        let member = blocking(move || lk.member(actor, account, user)).await?;
        self.ok(&views::member(&self.base, &member))
    }

    async fn update_user(self, id: &str) -> Reply {
        let user: UserId = path_id(id)?;
        let body: UserUpdate = parse(&self.body)?;
        let (lk, Caller { actor, account, .. }) = (Arc::clone(&self.lk), self.caller);
        let member = blocking(move || {
            if let Some(name) = &body.name {
                lk.rename_member(actor, account, user, name)?;
            }
            if let Some(roles) = &body.roles {
                lk.update_member_roles(actor, account, user, roles.patch())?;
            }
            if let Some(state) = body.state {
                lk.set_member_state(actor, account, user, state)?;
            }
            lk.member(actor, account, user)
        })
        .await?;
        self.ok(&views::member(&self.base, &member))
    }

    async fn remove_user(self, id: &str) -> Reply {
        let user: UserId = path_id(id)?;
        let (lk, Caller { actor, account, .. }) = (Arc::clone(&self.lk), self.caller);
        blocking(move || lk.remove_member(actor, account, user)).await?;
        Ok(no_content())
    }

    async fn list_bots(self) -> Reply {
        let page = self.page_request::<BotId>("/bot_users")?;
        let (lk, Caller { actor, account, .. }) = (Arc::clone(&self.lk), self.caller);
        let bots = blocking(move || lk.bots(actor, account, page)).await?;
        self.page_reply(
            "/bot_users",
            "bot_users",
            &bots,
            |b| b.id,
            |b| views::bot(&self.base, b),
        )
    }

    async fn create_bot(self) -> Reply {
        let body: BotCreate = parse(&self.body)?;
        let name = body.name.unwrap_or_default();
        let active = body.active.unwrap_or(true);
        let (lk, Caller { actor, account, .. }) = (Arc::clone(&self.lk), self.caller);
        let bot = blocking(move || lk.create_bot_as(actor, account, &name, active)).await?;
        self.created(&views::bot(&self.base, &bot))
    }

    async fn get_bot(self, id: &str) -> Reply {
        let bot: BotId = path_id(id)?;
        let (lk, Caller { actor, account, .. }) = (Arc::clone(&self.lk), self.caller);
        let bot = blocking(move || lk.bot(actor, account, bot)).await?;
        self.ok(&views::bot(&self.base, &bot))
    }

    async fn update_bot(self, id: &str) -> Reply {
        let bot: BotId = path_id(id)?;
        let body: BotUpdate = parse(&self.body)?;
        same_id(body.id.as_deref(), bot)?;
        let patch = BotPatch {
            name: body.name,
            active: body.active,
        };
        let (lk, Caller { actor, account, .. }) = (Arc::clone(&self.lk), self.caller);
        let bot = blocking(move || lk.update_bot(actor, account, bot, &patch)).await?;
        self.ok(&views::bot(&self.base, &bot))
    }

    async fn delete_bot(self, id: &str) -> Reply {
        let bot: BotId = path_id(id)?;
        let (lk, Caller { actor, account, .. }) = (Arc::clone(&self.lk), self.caller);
        blocking(move || lk.delete_bot(actor, account, bot)).await?;
        Ok(no_content())
    }

    async fn list_credentials(self, kind: Option<CredentialKind>) -> Reply {
        let kind = kind.ok_or_else(|| ApiError::new(error::NO_ROUTE, "no such path"))?;
        let path = format!("/{}", views::collection(kind));
        let before = self
            .before_id::<CredentialId>(&path)?
            .filter(|id| id.kind == kind);
        if self.query.before_id.is_some() && before.is_none() {
            return Err(ApiError::field(
                error::INVALID_QUERY,
                "before_id",
                format!("before_id is not the id of an object of {path}"),
            ));
        }
        let page = PageRequest {
            before: before.map(|id| id.raw),
            limit: self.query.limit,
        };
        let (lk, Caller { actor, account, .. }) = (Arc::clone(&self.lk), self.caller);
        let page = blocking(move || lk.credentials(actor, account, kind, page)).await?;
        let field = match kind {
            CredentialKind::ApiKey => "keys",
            CredentialKind::Authtoken => "credentials",
            CredentialKind::SshKey => "ssh_credentials",
        };
        self.page_reply(
            &path,
            field,
            &page,
            |(c, _)| c.id,
            |(c, used)| views::credential(&self.base, c, None, *used),
        )
    }

    fn credential_id(kind: Option<CredentialKind>, id: &str) -> Result<CredentialId, ApiError> {
        let id: CredentialId = path_id(id)?;
        if Some(id.kind) != kind {
            return Err(ApiError::new(error::NOT_FOUND, format!("{id} not found")));
        }
        Ok(id)
    }

    async fn get_credential(self, kind: Option<CredentialKind>, id: &str) -> Reply {
        let id = Ctx::credential_id(kind, id)?;
        let (lk, Caller { actor, account, .. }) = (Arc::clone(&self.lk), self.caller);
        let (credential, used) = blocking(move || {
            let credential = lk.credential(actor, account, id)?;
            Ok((credential, lk.last_used(id)?))
        })
        .await?;
        self.ok(&views::credential(&self.base, &credential, None, used))
    }

    async fn create_token(self, kind: TokenKind) -> Reply {
        let body: TokenCreate = parse(&self.body)?;
        let owner = self.owner(body.owner_id.as_deref())?;
        let mut spec = spec(body.description, body.metadata, body.acl, body.expires_at)?;
        spec.scopes = body.scopes.unwrap_or_default();
        spec.allowed_cidrs = body.allowed_cidrs.unwrap_or_default();
        let (lk, Caller { actor, account, .. }) = (Arc::clone(&self.lk), self.caller);
        let (credential, secret) =
            blocking(move || lk.create_token_credential(actor, account, kind, owner, spec)).await?;
        self.created(&views::credential(
            &self.base,
            &credential,
            Some(&secret),
            None,
        ))
    }

    async fn create_ssh(self) -> Reply {
        let body: SshCreate = parse(&self.body)?;
        let public_key = body.public_key.ok_or_else(|| {
            ApiError::field(error::INVALID_FIELD, "public_key", "public_key is required")
        })?;
        let owner = self.owner(body.owner_id.as_deref())?;
        let spec = spec(body.description, body.metadata, body.acl, None)?;
        let (lk, Caller { actor, account, .. }) = (Arc::clone(&self.lk), self.caller);
        let credential =
            blocking(move || lk.create_ssh_credential(actor, account, owner, &public_key, spec))
                .await?;
        self.created(&views::credential(&self.base, &credential, None, None))
    }

    async fn update_credential(self, kind: Option<CredentialKind>, id: &str) -> Reply {
        let id = Ctx::credential_id(kind, id)?;
        let body: CredentialUpdate = parse(&self.body)?;
        same_id(body.id.as_deref(), id)?;
        let patch = CredentialPatch {
            description: body.description,
            metadata: body.metadata,
            acl: body.acl,
            scopes: body.scopes,
            allowed_cidrs: body.allowed_cidrs,
        };
        let (lk, Caller { actor, account, .. }) = (Arc::clone(&self.lk), self.caller);
        let (credential, used) = blocking(move || {
            let credential = lk.update_credential(actor, account, id, &patch)?;
            Ok((credential, lk.last_used(id)?))
        })
        .await?;
        self.ok(&views::credential(&self.base, &credential, None, used))
    }

    async fn delete_credential(self, kind: Option<CredentialKind>, id: &str) -> Reply {
        let id = Ctx::credential_id(kind, id)?;
        let (lk, Caller { actor, account, .. }) = (Arc::clone(&self.lk), self.caller);
        blocking(move || lk.delete_credential(actor, account, id)).await?;
        Ok(no_content())
    }

    async fn rotate(self, id: &str) -> Reply {
        let id = Ctx::credential_id(Some(CredentialKind::Authtoken), id)?;
        let (lk, Caller { actor, account, .. }) = (Arc::clone(&self.lk), self.caller);
        let (credential, secret, used) = blocking(move || {
            let (credential, secret) = lk.rotate_credential(actor, account, id)?;
            Ok((credential, secret, lk.last_used(id)?))
        })
        .await?;
        self.ok(&views::credential(
            &self.base,
            &credential,
            Some(&secret),
            used,
        ))
    }

    /// `POST /verify`: who is this? One answer for every invalid reason (RFC 7662 style);
    /// the reason goes to the log.
    async fn verify(self) -> Reply {
        let body: VerifyBody = parse(&self.body)?;
        let source_ip = body
            .source_ip
            .as_deref()
            .map(|text| {
                text.trim().parse::<std::net::IpAddr>().map_err(|_| {
                    ApiError::field(
                        error::INVALID_FIELD,
                        "source_ip",
                        format!("{text:?} is not an IP address"),
                    )
                })
            })
            .transpose()?;
        let (lk, Caller { actor, account, .. }) = (Arc::clone(&self.lk), self.caller);
        let presented = match (body.token, body.ssh_public_key) {
            (Some(token), None) => token,
            (None, Some(key)) => key,
            _ => {
                return Err(ApiError::field(
                    error::INVALID_FIELD,
                    "token",
                    "give exactly one of token and ssh_public_key",
                ));
            }
        };
        // In memory on a hot path (no store read unless something was written since the
        // caller was last resolved), so it runs here rather than on the blocking pool.
        lk.authorize_verify(actor, account)?;
        let answer = lk.verify(&presented);
        let verdict = match answer {
            Ok(verified) if verified.account != account => Err("other_account"),
            Ok(verified) => self
                .judge_source(&verified, source_ip)
                .map(|warned| (verified, warned)),
            Err(rejection) => Err(rejection.as_str()),
        };
        self.metrics.verified(verdict.is_ok());
        match verdict {
            Ok((verified, warned)) => {
                let mut response = json_response(StatusCode::OK, &verified_view(&verified));
                if let Some(warning) = warned {
                    response.headers_mut().insert(IP_WARNING_HEADER, warning);
                }
                Ok(response)
            }
            Err(reason) => {
                tracing::info!(reason, "verify: invalid");
                let mut response =
                    Response::new(Full::new(Bytes::from_static(b"{\"valid\":false}")));
                response.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
                Ok(response)
            }
        }
    }

    /// Where the presented credential may be used from: its own `allowed_cidrs`, and for
    /// agents (authtokens and SSH keys) the account's `agent` IP restrictions. Without a
    /// `source_ip` neither can be shown to hold, so a credential or account that has them
    /// fails closed. A warn-only miss passes, flagged.
    fn judge_source(
        &self,
        verified: &Verified,
        source_ip: Option<std::net::IpAddr>,
    ) -> Result<Option<HeaderValue>, &'static str> {
        if let Some(networks) = &verified.allowed_cidrs
            && !source_ip.is_some_and(|ip| allows_source(networks, ip))
        {
            return Err("source_ip_not_allowed");
        }
        if verified.credential.kind == CredentialKind::ApiKey {
            return Ok(None);
        }
        let passage = self
            .lk
            .check_ip(verified.account, RestrictionType::Agent, source_ip)
            .map_err(|_| "ip_restrictions_unavailable")?;
        match passage {
            Passage::Allowed => Ok(None),
            Passage::Denied(_) => Err("agent_ip_restricted"),
            Passage::Warned(restrictions) => {
                let shown =
                    source_ip.map_or_else(|| "an unknown address".to_owned(), |ip| ip.to_string());
                if let Some(ip) = source_ip {
                    self.warnings
                        .note(verified.account, &restrictions, ip, self.lk.now());
                }
                let ids: Vec<String> = restrictions.iter().map(ToString::to_string).collect();
                let text = format!(
                    "{} (warn-only) would refuse agents from {shown}",
                    ids.join(", ")
                );
                Ok(HeaderValue::from_str(&text).ok())
            }
        }
    }

    /// `POST /authorize` (one check) and `/authorize/batch` (`{"checks": [...]}`).
    async fn authorize(self, batch: bool) -> Reply {
        let checks = if batch {
            let body: Batch = parse(&self.body)?;
            if body.checks.is_empty() || body.checks.len() > MAX_BATCH {
                return Err(ApiError::field(
                    error::INVALID_FIELD,
                    "checks",
                    format!("give 1 to {MAX_BATCH} checks"),
                ));
            }
            body.checks
        } else {
            vec![parse::<Check>(&self.body)?]
        };
        let explains: Vec<bool> = checks.iter().map(|c| c.explain).collect();
        let mut questions = Vec::with_capacity(checks.len());
        // A principal given by a token that does not verify (or belongs elsewhere) gets an
        // answer too: deny, naming latchkey.
        let mut invalid = Vec::with_capacity(checks.len());
        let mut times: Vec<Option<String>> = Vec::with_capacity(checks.len());
        for mut check in checks {
            if check.action.is_empty() || check.action.len() > MAX_ACTION {
                return Err(ApiError::field(
                    error::INVALID_FIELD,
                    "action",
                    format!("action must be 1 to {MAX_ACTION} bytes"),
                ));
            }
            let at = match check.context.remove("time") {
                None => None,
                Some(Value::String(text)) => {
                    Some(Timestamp::parse_rfc3339("context.time", &text).map_err(ApiError::from)?)
                }
                Some(_) => {
                    return Err(ApiError::field(
                        error::INVALID_FIELD,
                        "context.time",
                        "context.time must be an RFC 3339 time, as in 2026-12-01T09:30:00Z",
                    ));
                }
            };
            times.push(at.map(Timestamp::to_rfc3339));
            let (principal, valid) = self.principal(&check.principal)?;
            invalid.push(!valid);
            let mut target =
                crate::app::Target::action(check.action, &check.resource.kind, check.resource.id);
            target.tenant = check.resource.tenant_id;
            target.owner = check.resource.owner_id;
            target.attributes = check
                .resource
                .attributes
                .into_iter()
                .map(|(k, v)| (k, as_text(v)))
                .collect();
            target.context = check
                .context
                .into_iter()
                .map(|(k, v)| (k, as_text(v)))
                .collect();
            target.at = at;
            questions.push((principal, target));
        }
        let explain_any = explains.iter().any(|e| *e);
        let (lk, Caller { actor, account, .. }) = (Arc::clone(&self.lk), self.caller);
        // Decided here, on the async worker, when every principal is already resolved in
        // memory (as `/verify` does); otherwise on the blocking pool, which reads the store.
        let verdicts =
            match lk.check_permissions_in_memory(actor, account, questions, explain_any)? {
                Ok(verdicts) => verdicts,
                Err(questions) => {
                    blocking(move || lk.check_permissions(actor, account, questions, explain_any))
                        .await?
                }
            };
        let answers: Vec<Answer<'_>> = verdicts
            .iter()
            .zip(explains)
            .zip(invalid)
            .zip(&times)
            .map(|(((verdict, explain), invalid), time)| {
                self.metrics.decided(verdict.allowed && !invalid);
                let evaluated = explain.then(|| {
                    verdict
                        .evaluated
                        .iter()
                        .map(|e| Evaluated {
                            policy: &e.policy,
                            decision: outcome(e.outcome),
                            reason: &e.reason,
                        })
                        .collect()
                });
                let time = time.as_deref();
                if invalid {
                    Answer {
                        decision: "deny",
                        policy: "latchkey",
                        reason: "the principal's token is not valid",
                        time,
                        evaluated,
                        request: None,
                    }
                } else {
                    Answer {
                        decision: if verdict.allowed { "allow" } else { "deny" },
                        policy: &verdict.policy,
                        reason: &verdict.reason,
                        time,
                        evaluated,
                        request: verdict.request.as_deref().filter(|_| explain),
                    }
                }
            })
            .collect();
        if batch {
            Ok(json_response(
                StatusCode::OK,
                &Decisions { decisions: answers },
            ))
        } else {
            match answers.first() {
                Some(answer) => Ok(json_response(StatusCode::OK, answer)),
                None => self.ok(&Value::Null),
            }
        }
    }

    /// The actor a check is about: a user or bot of the caller's account by id, or the
    /// owner of a token (with the token as its credential). `false` when the token does
    /// not verify in this account.
    fn principal(&self, given: &CheckPrincipal) -> Result<(Actor, bool), ApiError> {
        let bad = |msg: &str| ApiError::field(error::INVALID_FIELD, "principal", msg);
        match (&given.id, &given.token) {
            (Some(id), None) => {
                let owner =
                    Owner::parse(id).map_err(|_| bad("principal.id must be a usr_ or bot_ id"))?;
                Ok((
                    Actor {
                        principal: match owner {
                            Owner::User(user) => Principal::User(user),
                            Owner::Bot(bot) => Principal::Bot(bot),
                        },
                        credential: None,
                    },
                    true,
                ))
            }
            (None, Some(token)) => match self.lk.verify(token) {
                Ok(verified) if verified.account == self.caller.account => {
                    Ok((actor_of(&verified), true))
                }
                _ => Ok((self.caller.actor, false)),
            },
            _ => Err(bad("give the principal as {\"id\"} or {\"token\"}")),
        }
    }

    async fn effective_permissions(self, id: &str) -> Reply {
        let user: UserId = path_id(id)?;
        let (lk, Caller { actor, account, .. }) = (Arc::clone(&self.lk), self.caller);
        let allowed = blocking(move || lk.effective_permissions(actor, account, user)).await?;
        let (iam, catalog): (Vec<String>, Vec<String>) =
            allowed.into_iter().partition(|a| a.starts_with("iam."));
        self.ok(&json!({
            "user_id": user.to_string(),
            "uri": self.base.uri(&format!("/users/{user}/effective_permissions")),
            "actions": iam,
            "permissions": catalog,
        }))
    }

    async fn list_ip_policies(self) -> Reply {
        let page = self.page_request::<IpPolicyId>("/ip_policies")?;
        let (lk, Caller { actor, account, .. }) = (Arc::clone(&self.lk), self.caller);
        let policies = blocking(move || lk.ip_policies(actor, account, page)).await?;
        self.page_reply(
            "/ip_policies",
            "ip_policies",
            &policies,
            |p| p.id,
            |p| views::ip_policy(&self.base, p),
        )
    }

    async fn create_ip_policy(self) -> Reply {
        let body: IpBody = parse(&self.body)?;
        body.only(&[])?;
        let (lk, Caller { actor, account, .. }) = (Arc::clone(&self.lk), self.caller);
        let policy = blocking(move || lk.create_ip_policy(actor, account, body.text())).await?;
        self.created(&views::ip_policy(&self.base, &policy))
    }

    async fn get_ip_policy(self, id: &str) -> Reply {
        let id: IpPolicyId = path_id(id)?;
        let (lk, Caller { actor, account, .. }) = (Arc::clone(&self.lk), self.caller);
        let policy = blocking(move || lk.ip_policy(actor, account, id)).await?;
        self.ok(&views::ip_policy(&self.base, &policy))
    }

    async fn update_ip_policy(self, id: &str) -> Reply {
        let id: IpPolicyId = path_id(id)?;
        let body: IpBody = parse(&self.body)?;
        same_id(body.id.as_deref(), id)?;
        body.only(&[])?;
        let patch = body.patch()?;
        let (lk, Caller { actor, account, .. }) = (Arc::clone(&self.lk), self.caller);
        let policy = blocking(move || lk.update_ip_policy(actor, account, id, &patch)).await?;
        self.ok(&views::ip_policy(&self.base, &policy))
    }

    async fn delete_ip_policy(self, id: &str) -> Reply {
        let id: IpPolicyId = path_id(id)?;
        let (lk, Caller { actor, account, .. }) = (Arc::clone(&self.lk), self.caller);
        blocking(move || lk.delete_ip_policy(actor, account, id)).await?;
        Ok(no_content())
    }

    async fn list_ip_rules(self) -> Reply {
        let page = self.page_request::<IpRuleId>("/ip_policy_rules")?;
        let (lk, Caller { actor, account, .. }) = (Arc::clone(&self.lk), self.caller);
        let rules = blocking(move || lk.ip_rules(actor, account, page)).await?;
        self.page_reply(
            "/ip_policy_rules",
            "ip_policy_rules",
            &rules,
            |r| r.id,
            |r| views::ip_rule(&self.base, r),
        )
    }

    async fn create_ip_rule(self) -> Reply {
        let body: IpBody = parse(&self.body)?;
        body.only(&["cidr", "ip_policy_id", "action"])?;
        let cidr = required(body.cidr.as_deref(), "cidr")?.to_owned();
        let policy_text = required(body.ip_policy_id.as_deref(), "ip_policy_id")?;
        let policy: IpPolicyId = policy_text.parse().map_err(|_| {
            ApiError::field(
                error::INVALID_FIELD,
                "ip_policy_id",
                format!("{policy_text:?} is not an IP policy id"),
            )
        })?;
        let action = match required(body.action.as_deref(), "action")? {
            "allow" => RuleAction::Allow,
            "deny" => RuleAction::Deny,
            other => {
                return Err(ApiError::field(
                    error::INVALID_FIELD,
                    "action",
                    format!("action must be allow or deny, not {other:?}"),
                ));
            }
        };
        let text = body.text();
        let (lk, Caller { actor, account, .. }) = (Arc::clone(&self.lk), self.caller);
        let rule = blocking(move || lk.create_ip_rule(actor, account, policy, &cidr, action, text))
            .await?;
        self.created(&views::ip_rule(&self.base, &rule))
    }

    async fn get_ip_rule(self, id: &str) -> Reply {
        let id: IpRuleId = path_id(id)?;
        let (lk, Caller { actor, account, .. }) = (Arc::clone(&self.lk), self.caller);
        let rule = blocking(move || lk.ip_rule(actor, account, id)).await?;
        self.ok(&views::ip_rule(&self.base, &rule))
    }

    async fn update_ip_rule(self, id: &str) -> Reply {
        let id: IpRuleId = path_id(id)?;
        let body: IpBody = parse(&self.body)?;
        same_id(body.id.as_deref(), id)?;
        body.only(&["cidr"])?;
        let patch = body.patch()?;
        let (lk, Caller { actor, account, .. }) = (Arc::clone(&self.lk), self.caller);
        let rule = blocking(move || lk.update_ip_rule(actor, account, id, &patch)).await?;
        self.ok(&views::ip_rule(&self.base, &rule))
    }

    async fn delete_ip_rule(self, id: &str) -> Reply {
        let id: IpRuleId = path_id(id)?;
        let (lk, Caller { actor, account, .. }) = (Arc::clone(&self.lk), self.caller);
        blocking(move || lk.delete_ip_rule(actor, account, id)).await?;
        Ok(no_content())
    }

    async fn list_ip_restrictions(self) -> Reply {
        let page = self.page_request::<IpRestrictionId>("/ip_restrictions")?;
        let (lk, Caller { actor, account, .. }) = (Arc::clone(&self.lk), self.caller);
        let restrictions = blocking(move || lk.ip_restrictions(actor, account, page)).await?;
        self.page_reply(
            "/ip_restrictions",
            "ip_restrictions",
            &restrictions,
            |r| r.id,
            |r| views::ip_restriction(&self.base, r),
        )
    }

    async fn create_ip_restriction(self) -> Reply {
        let body: IpBody = parse(&self.body)?;
        body.only(&["enforced", "type", "ip_policy_ids", "confirm_lockout"])?;
        let kind = match required(body.kind.as_deref(), "type")? {
            "dashboard" => RestrictionType::Dashboard,
            "api" => RestrictionType::Api,
            "agent" => RestrictionType::Agent,
            "endpoints" => RestrictionType::Endpoints,
            other => {
                return Err(ApiError::field(
                    error::INVALID_FIELD,
                    "type",
                    format!("type must be dashboard, api, agent or endpoints, not {other:?}"),
                ));
            }
        };
        let policies = body.policy_ids()?.ok_or_else(|| {
            ApiError::field(
                error::INVALID_FIELD,
                "ip_policy_ids",
                "ip_policy_ids is required",
            )
        })?;
        let enforced = body.enforced.unwrap_or(false);
        let text = body.text();
        let lockout = self.lockout(&body);
        let (lk, Caller { actor, account, .. }) = (Arc::clone(&self.lk), self.caller);
        let restriction = blocking(move || {
            let spec = RestrictionSpec {
                kind,
                enforced,
                policies,
                text,
            };
            lk.create_ip_restriction(actor, account, spec, lockout)
        })
        .await?;
        self.created(&views::ip_restriction(&self.base, &restriction))
    }

    async fn get_ip_restriction(self, id: &str) -> Reply {
        let id: IpRestrictionId = path_id(id)?;
        let (lk, Caller { actor, account, .. }) = (Arc::clone(&self.lk), self.caller);
        let restriction = blocking(move || lk.ip_restriction(actor, account, id)).await?;
        self.ok(&views::ip_restriction(&self.base, &restriction))
    }

    async fn update_ip_restriction(self, id: &str) -> Reply {
        let id: IpRestrictionId = path_id(id)?;
        let body: IpBody = parse(&self.body)?;
        same_id(body.id.as_deref(), id)?;
        body.only(&["enforced", "ip_policy_ids", "confirm_lockout"])?;
        let mut patch = body.patch()?;
        // ngrok's clients send `ip_policy_ids: []` for "not given" (Go's omitempty, the
        // Python client's default); a restriction always has a policy, so an empty list
        // can only mean that.
        if patch.policies.as_ref().is_some_and(Vec::is_empty) {
            patch.policies = None;
        }
        let lockout = self.lockout(&body);
        let (lk, Caller { actor, account, .. }) = (Arc::clone(&self.lk), self.caller);
        let restriction =
            blocking(move || lk.update_ip_restriction(actor, account, id, &patch, lockout)).await?;
        self.ok(&views::ip_restriction(&self.base, &restriction))
    }

    async fn delete_ip_restriction(self, id: &str) -> Reply {
        let id: IpRestrictionId = path_id(id)?;
        let (lk, Caller { actor, account, .. }) = (Arc::clone(&self.lk), self.caller);
        blocking(move || lk.delete_ip_restriction(actor, account, id)).await?;
        Ok(no_content())
    }

    /// `GET /events`: newest first, filtered by `principal_id`, `action`, `object_id`,
    /// `since` and `until` (RFC 3339, inclusive).
    async fn list_events(self) -> Reply {
        let since = self.query.time("since")?;
        let until = self.query.time("until")?;
        let principal = self.query.filter("principal_id").map(str::to_owned);
        if let Some(text) = &principal
            && text != "system"
            && Owner::parse(text).is_err()
        {
            return Err(ApiError::field(
                error::INVALID_QUERY,
                "principal_id",
                "principal_id must be a usr_ or bot_ id, or system",
            ));
        }
        let query = crate::store::EventQuery {
            principal: principal.as_deref().map(|text| match Owner::parse(text) {
                Ok(owner) => owner.raw(),
                Err(_) => 0,
            }),
            action: self.query.filter("action").map(str::to_owned),
            object: self.query.filter("object_id").map(str::to_owned),
            since,
            until,
            before: self.before_id("/events")?,
            limit: self.query.limit,
        };
        self.events_reply(
            "/events",
            "an event of this account",
            move |lk, actor, account| lk.events_page(actor, account, &query),
            views::event,
        )
        .await
    }

    /// A page of a trail fetched by `fetch` (on the blocking pool), served at `path`. A
    /// `before_id` that is not `what` is a 400: the caller's account is checked already,
    /// so only `before` can be missing.
    async fn events_reply(
        self,
        path: &str,
        what: &str,
        fetch: impl FnOnce(
            Arc<Latchkey>,
            Actor,
            AccountId,
        ) -> Result<Page<crate::domain::event::Event>, AppError>
        + Send
        + 'static,
        render: impl Fn(&Base, &crate::domain::event::Event) -> Value,
    ) -> Reply {
        let (lk, Caller { actor, account, .. }) = (Arc::clone(&self.lk), self.caller);
        let found = blocking(move || match fetch(lk, actor, account) {
            Ok(page) => Ok(Some(page)),
            Err(AppError::Domain(crate::domain::DomainError::NotFound(_))) => Ok(None),
            Err(err) => Err(err),
        })
        .await?;
        let Some(events) = found else {
            return Err(ApiError::field(
                error::INVALID_QUERY,
                "before_id",
                format!("before_id is not the id of {what}"),
            ));
        };
        self.page_reply(path, "events", &events, |e| e.id, |e| render(&self.base, e))
    }

    async fn get_event(self, id: &str) -> Reply {
        let id: crate::domain::id::EventId = path_id(id)?;
        let (lk, Caller { actor, account, .. }) = (Arc::clone(&self.lk), self.caller);
        let event = blocking(move || lk.event(actor, account, id)).await?;
        self.ok(&views::event(&self.base, &event))
    }

    /// `GET /policies`: the live set's names, patterns, hashes and generation, for an
    /// account's administrators. Changing it is the host operator's (admin socket, SIGHUP).
    async fn list_policies(self) -> Reply {
        let (lk, Caller { actor, account, .. }) = (Arc::clone(&self.lk), self.caller);
        let set = blocking(move || lk.policy_set(actor, account)).await?;
        let mut view = views::live_set(&set, false);
        if let Some(fields) = view.as_object_mut() {
            fields.insert("uri".into(), self.base.uri("/policies").into());
        }
        self.ok(&view)
    }

    /// `GET /policies/events`: the appliance trail (every start and reload of the live
    /// set, refused ones included), newest first, for an account's administrators.
    async fn list_policy_events(self) -> Reply {
        let query = crate::store::EventQuery {
            before: self.before_id("/policies/events")?,
            limit: self.query.limit,
            ..crate::store::EventQuery::default()
        };
        self.events_reply(
            "/policies/events",
            "an event of the appliance trail",
            move |lk, actor, account| lk.policy_events(actor, account, &query),
            |_, e| views::appliance_event(e, false),
        )
        .await
    }
}

/// A credential spec from the create body's fields.
fn spec(
    description: Option<String>,
    metadata: Option<String>,
    acl: Option<Vec<String>>,
    expires_at: Option<String>,
) -> Result<CredentialSpec, ApiError> {
    let expires_at = expires_at
        .map(|text| Timestamp::parse_rfc3339("expires_at", &text))
        .transpose()
        .map_err(ApiError::from)?;
    Ok(CredentialSpec {
        description: description.unwrap_or_default(),
        metadata: metadata.unwrap_or_default(),
        expires_at,
        acl: acl.unwrap_or_default(),
        ..CredentialSpec::default()
    })
}
