//! IP policies, their rules, and the restrictions that apply them (dashboard, API,
//! agent, endpoints), warn-only or enforced. Enforcing asks the member to confirm it is
//! them; a dashboard restriction that would refuse the member's own address is made
//! only once the member ticks that it may lock itself out (the lockout guard).

use maud::{Markup, html};

use super::console::Console;
use super::pages::{button_form, csrf_field, error_line, notice_line, when};
use super::{Answer, AppOrApi, Form, Notice, Refusal, Web, blocking, done, not_found, status_of};
use crate::app::{IpPatch, IpText, Lockout, RestrictionSpec};
use crate::domain::DomainError;
use crate::domain::id::{IpPolicyId, IpRestrictionId, IpRuleId};
use crate::domain::ip::{IpPolicy, IpPolicyRule, IpRestriction, RestrictionType, RuleAction};
use crate::store::PageRequest;

/// Objects of each kind shown at most.
const MANY: usize = 200;

const TYPES: [(RestrictionType, &str); 4] = [
    (RestrictionType::Dashboard, "Dashboard sessions"),
    (RestrictionType::Api, "API requests"),
    (RestrictionType::Agent, "Agents (authtoken verification)"),
    (RestrictionType::Endpoints, "Endpoints"),
];

struct IpState {
    policies: Vec<IpPolicy>,
    rules: Vec<IpPolicyRule>,
    restrictions: Vec<IpRestriction>,
}

impl Web {
    /// `GET /ui/ip`.
    pub(super) async fn ip(
        &self,
        console: &Console,
        notice: Option<Notice>,
        error: Refusal,
    ) -> Answer {
        let (lk, actor, account) = self.acting(console);
        let see_restrictions = console.may("ip_restrictions.list");
        let all = PageRequest {
            before: None,
            limit: MANY,
        };
        let state = blocking(move || {
            let restrictions = if see_restrictions {
                lk.ip_restrictions(actor, account, all)?.items
            } else {
                Vec::new()
            };
            Ok(IpState {
                policies: lk.ip_policies(actor, account, all)?.items,
                rules: lk.ip_rules(actor, account, all)?.items,
                restrictions,
            })
        })
        .await?;
        let (status, error) = status_of(error);
        Ok(console.render(
            status,
            "IP restrictions",
            ip_page(console, &state, notice, error.as_deref()),
        ))
    }

    /// `POST /ui/ip/…`.
    pub(super) async fn ip_post(
        &self,
        console: &Console,
        rest: &[&str],
        form: &Form,
        peer: Option<std::net::IpAddr>,
    ) -> Answer {
        let result = self.ip_change(console, rest, form, peer).await;
        match result {
            Ok(Some(notice)) => done("/ui/ip", notice),
            Ok(None) => Err(not_found()),
            Err(refused) => self.ip(console, None, Some(refused.explain())).await,
        }
    }

    async fn ip_change(
        &self,
        console: &Console,
        rest: &[&str],
        form: &Form,
        peer: Option<std::net::IpAddr>,
    ) -> Result<Option<Notice>, AppOrApi> {
        let (lk, actor, account) = self.acting(console);
        let text = IpText {
            description: form.get("description").trim().to_owned(),
            metadata: String::new(),
        };
        let lockout = Lockout {
            from: peer,
            confirmed: form.checked("confirm_lockout"),
        };
        let invalid = |field: &'static str| -> AppOrApi {
            AppOrApi::App(DomainError::invalid(field, "is not one of the choices").into())
        };
        let notice = match rest {
            ["policies", "new"] => {
                blocking(move || lk.create_ip_policy(actor, account, text)).await?;
                Notice::IpSaved
            }
            ["policies", id, "delete"] => {
                let id: IpPolicyId = id.parse().map_err(|_| invalid("id"))?;
                blocking(move || lk.delete_ip_policy(actor, account, id)).await?;
                Notice::IpDeleted
            }
            ["policies", id, "rules"] => {
                let policy: IpPolicyId = id.parse().map_err(|_| invalid("id"))?;
                let action = match form.get("action") {
                    "allow" => RuleAction::Allow,
                    "deny" => RuleAction::Deny,
                    _ => return Err(invalid("action")),
                };
                let cidr = form.get("cidr").trim().to_owned();
                blocking(move || lk.create_ip_rule(actor, account, policy, &cidr, action, text))
                    .await?;
                Notice::IpSaved
            }
            ["rules", id, "delete"] => {
                let id: IpRuleId = id.parse().map_err(|_| invalid("id"))?;
                blocking(move || lk.delete_ip_rule(actor, account, id)).await?;
                Notice::IpDeleted
            }
            ["restrictions", "new"] => {
                let kind = TYPES
                    .iter()
                    .find(|(t, _)| t.as_str() == form.get("type"))
                    .map(|(t, _)| *t)
                    .ok_or_else(|| invalid("type"))?;
                let policies = form
                    .all("ip_policy_id")
                    .map(|p| {
                        p.parse::<IpPolicyId>()
                            .map_err(|_| invalid("ip_policy_ids"))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                let enforced = form.checked("enforced");
                self.confirm_if(console, enforced, form).await?;
                let spec = RestrictionSpec {
                    kind,
                    enforced,
                    policies,
                    text,
                };
                blocking(move || lk.create_ip_restriction(actor, account, spec, lockout)).await?;
                Notice::IpSaved
            }
            ["restrictions", id, action @ ("enforce" | "warn" | "delete")] => {
                let id: IpRestrictionId = id.parse().map_err(|_| invalid("id"))?;
                if *action == "delete" {
                    blocking(move || lk.delete_ip_restriction(actor, account, id)).await?;
                    Notice::IpDeleted
                } else {
                    let enforced = *action == "enforce";
                    self.confirm_if(console, enforced, form).await?;
                    let patch = IpPatch {
                        enforced: Some(enforced),
                        ..IpPatch::default()
                    };
                    blocking(move || lk.update_ip_restriction(actor, account, id, &patch, lockout))
                        .await?;
                    Notice::IpSaved
                }
            }
            _ => return Ok(None),
        };
        Ok(Some(notice))
    }
}

/// The fields an enforcing change needs: who is at the keyboard, and the lockout
/// guard's confirmation.
fn enforce_fields(prefix: &str) -> Markup {
    html! {
        label for=(format!("{prefix}-confirm")) { "Your password (or a current code), to enforce" }
        input id=(format!("{prefix}-confirm")) type="password" name="confirm" autocomplete="current-password";
        div.check {
            input id=(format!("{prefix}-lockout")) type="checkbox" name="confirm_lockout" value="on";
            label for=(format!("{prefix}-lockout")) { "I may lock myself out: make it even if it refuses my own address" }
        }
    }
}

fn ip_page(
    console: &Console,
    state: &IpState,
    notice: Option<Notice>,
    error: Option<&str>,
) -> Markup {
    let csrf = console.csrf();
    let policy_name = |id: IpPolicyId| {
        state.policies.iter().find(|p| p.id == id).map_or_else(
            || id.to_string(),
            |p| {
                if p.description.is_empty() {
                    id.to_string()
                } else {
                    p.description.clone()
                }
            },
        )
    };
    html! {
        (notice_line(notice))
        (error_line(error))
        p { "An IP policy is a list of allow and deny rules; a restriction applies policies to dashboard sessions, API requests, agents or endpoints. Warn-only restrictions let requests through and record which ones they would refuse." }
        section aria-labelledby="restrictions" {
            h2 #restrictions { "Restrictions" }
            @if state.restrictions.is_empty() { p { "No restrictions: every address is allowed." } } @else {
                div.scroll { table {
                    thead { tr { th { "Applies to" } th { "Mode" } th { "Policies" } th { "Made" } th { span.visually-hidden { "Actions" } } } }
                    tbody {
                        @for restriction in &state.restrictions {
                            @let id = restriction.id;
                            tr {
                                td { (TYPES.iter().find(|(t, _)| *t == restriction.kind).map_or("", |(_, l)| *l)) br; small { code { (id.to_string()) } } }
                                td { @if restriction.enforced { strong { "enforced" } } @else { "warn-only" } }
                                td { @for p in &restriction.policies { (policy_name(*p)) br; } }
                                td { (when(restriction.created_at)) }
                                td.actions {
                                    @if console.may("ip_restrictions.update") {
                                        @if restriction.enforced {
                                            (button_form(csrf, &format!("/ui/ip/restrictions/{id}/warn"), "Make warn-only", "secondary"))
                                        } @else {
                                            details {
                                                summary { "Enforce…" }
                                                form method="post" action=(format!("/ui/ip/restrictions/{id}/enforce")) {
                                                    (csrf_field(csrf))
                                                    (enforce_fields(&id.to_string()))
                                                    button type="submit" { "Enforce" }
                                                }
                                            }
                                        }
                                    }
                                    @if console.may("ip_restrictions.delete") {
                                        (button_form(csrf, &format!("/ui/ip/restrictions/{id}/delete"), "Delete", "danger"))
                                    }
                                }
                            }
                        }
                    }
                } }
            }
            @if console.may("ip_restrictions.create") && !state.policies.is_empty() {
                h3 { "New restriction" }
                form method="post" action="/ui/ip/restrictions/new" {
                    (csrf_field(csrf))
                    label for="restriction-type" { "Applies to" }
                    select #restriction-type name="type" {
                        @for (kind, label) in TYPES { option value=(kind.as_str()) { (label) } }
                    }
                    fieldset {
                        legend { "Policies" }
                        @for policy in &state.policies {
                            @let field = format!("restriction-policy-{}", policy.id);
                            div.check {
                                input id=(field) type="checkbox" name="ip_policy_id" value=(policy.id.to_string());
                                label for=(field) { (policy_name(policy.id)) }
                            }
                        }
                    }
                    label for="restriction-description" { "Description" }
                    input #restriction-description type="text" name="description" maxlength="255";
                    div.check {
                        input #restriction-enforced type="checkbox" name="enforced" value="on";
                        label for="restriction-enforced" { "Enforced (unticked: warn-only)" }
                    }
                    (enforce_fields("new-restriction"))
                    button type="submit" { "Create restriction" }
                }
            }
        }
        section aria-labelledby="policies" {
            h2 #policies { "Policies" }
            @for policy in &state.policies {
                @let id = policy.id;
                article.policy {
                    h3 { (policy_name(id)) " " small { code { (id.to_string()) } } }
                    @let rules: Vec<&IpPolicyRule> = state.rules.iter().filter(|r| r.policy == id).collect();
                    @if rules.is_empty() { p { "No rules: it allows nothing." } } @else {
                        ul {
                            @for rule in rules {
                                li {
                                    (match rule.action { RuleAction::Allow => "allow ", RuleAction::Deny => "deny " })
                                    code { (rule.cidr.to_string()) }
                                    @if !rule.description.is_empty() { " · " (rule.description) }
                                    @if console.may("ip_policy_rules.delete") {
                                        " " (button_form(csrf, &format!("/ui/ip/rules/{}/delete", rule.id), "Delete rule", "secondary"))
                                    }
                                }
                            }
                        }
                    }
                    @if console.may("ip_policy_rules.create") {
                        form.row method="post" action=(format!("/ui/ip/policies/{id}/rules")) {
                            (csrf_field(csrf))
                            @let field = |name: &str| format!("rule-{name}-{id}");
                            div { label for=(field("action")) { "Rule" }
                                select id=(field("action")) name="action" { option value="allow" { "allow" } option value="deny" { "deny" } } }
                            div { label for=(field("cidr")) { "Network" }
                                input id=(field("cidr")) type="text" name="cidr" placeholder="203.0.113.0/24" required; }
                            div { label for=(field("description")) { "Description" }
                                input id=(field("description")) type="text" name="description" maxlength="255"; }
                            button type="submit" { "Add rule" }
                        }
                    }
                    @if console.may("ip_policies.delete") {
                        (button_form(csrf, &format!("/ui/ip/policies/{id}/delete"), "Delete policy", "danger"))
                    }
                }
            }
            @if console.may("ip_policies.create") {
                h3 { "New policy" }
                form method="post" action="/ui/ip/policies/new" {
                    (csrf_field(csrf))
                    label for="policy-description" { "Description" }
                    input #policy-description type="text" name="description" maxlength="255" required;
                    button type="submit" { "Create policy" }
                }
            }
        }
    }
}
