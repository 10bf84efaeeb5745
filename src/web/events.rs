//! The audit trail with filters (principal, action, object, time), each event's before
//! and after, and links to the objects; the access review, with its CSV download.

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{self, HeaderValue};
use hyper::{Response, StatusCode};
use maud::{Markup, html};

use super::console::Console;
use super::pages::{error_line, when};
use super::{Answer, Web, blocking, query_value};
use crate::api::views::{self, Base};
use crate::app::ReviewedPrincipal;
use crate::domain::credential::Owner;
use crate::domain::event::{Event, Principal};
use crate::domain::id::EventId;
use crate::domain::time::Timestamp;
use crate::store::EventQuery;

/// Events per page.
const PAGE: usize = 50;

/// The filters as the form gave them (kept to fill the form again and for the next
/// page's link).
#[derive(Default)]
struct Filters {
    principal: String,
    action: String,
    object: String,
    since: String,
    until: String,
}

impl Filters {
    fn from_query(query: Option<&str>) -> Filters {
        let get = |name| {
            query_value(query, name)
                .unwrap_or_default()
                .trim()
                .to_owned()
        };
        Filters {
            principal: get("principal"),
            action: get("action"),
            object: get("object"),
            since: get("since"),
            until: get("until"),
        }
    }

    /// The store's query, or the field that is not right.
    fn query(&self, before: Option<EventId>) -> Result<EventQuery, String> {
        let principal = match self.principal.as_str() {
            "" => None,
            "system" => Some(0),
            text => Some(
                Owner::parse(text)
                    .map_err(|_| "Principal must be a usr_ or bot_ id, or system.".to_owned())?
                    .raw(),
            ),
        };
        Ok(EventQuery {
            principal,
            action: Some(self.action.clone()).filter(|a| !a.is_empty()),
            object: Some(self.object.clone()).filter(|o| !o.is_empty()),
            since: local_time(&self.since, "From")?,
            until: local_time(&self.until, "To")?,
            before,
            limit: PAGE,
        })
    }

    /// The query string of these filters (for the next page).
    fn encoded(&self) -> String {
        form_urlencoded::Serializer::new(String::new())
            .extend_pairs([
                ("principal", &self.principal),
                ("action", &self.action),
                ("object", &self.object),
                ("since", &self.since),
                ("until", &self.until),
            ])
            .finish()
    }
}

/// A `datetime-local` value (read as UTC), or nothing when empty.
fn local_time(text: &str, label: &str) -> Result<Option<Timestamp>, String> {
    if text.is_empty() {
        return Ok(None);
    }
    let full = if text.len() == 16 {
        format!("{text}:00Z")
    } else {
        format!("{text}Z")
    };
    Timestamp::parse_rfc3339("since", &full)
        .map(Some)
        .map_err(|_| format!("{label} must be a date and time, such as 2026-12-01T09:30."))
}

impl Web {
    /// `GET /ui/events`.
    pub(super) async fn events(&self, console: &Console, query: Option<&str>) -> Answer {
        let filters = Filters::from_query(query);
        let before = query_value(query, "before").and_then(|t| t.parse::<EventId>().ok());
        let (page, error) = match filters.query(before) {
            Ok(query) => {
                let (lk, actor, account) = self.acting(console);
                match blocking(move || lk.events_page(actor, account, &query)).await {
                    Ok(page) => (Some(page), None),
                    Err(refused) => (None, Some(refused.explain())),
                }
            }
            Err(why) => (None, Some((StatusCode::BAD_REQUEST, why))),
        };
        let status = error.as_ref().map_or(StatusCode::OK, |(s, _)| *s);
        let events = page.as_ref().map_or(&[][..], |p| p.items.as_slice());
        let next = page
            .as_ref()
            .filter(|p| p.more)
            .and_then(|p| p.items.last())
            .map(|e| format!("/ui/events?{}&before={}", filters.encoded(), e.id));
        Ok(console.render(
            status,
            "Events",
            events_page(
                console,
                &filters,
                events,
                next.as_deref(),
                error.as_ref().map(|(_, why)| why.as_str()),
            ),
        ))
    }

    /// `GET /ui/access-review`: who holds which role where, and what that grants.
    pub(super) async fn access_review(&self, console: &Console) -> Answer {
        let (lk, actor, account) = self.acting(console);
        let review = blocking(move || lk.access_review(actor, account)).await?;
        Ok(console.render(StatusCode::OK, "Access review", review_page(&review)))
    }

    /// `GET /ui/access-review.csv`: the same as a file (api.md's CSV).
    pub(super) async fn access_review_csv(&self, console: &Console) -> Answer {
        let (lk, actor, account) = self.acting(console);
        let review = blocking(move || lk.access_review(actor, account)).await?;
        let mut response = Response::new(Full::new(Bytes::from(crate::api::access_review_csv(
            &review,
        ))));
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/csv; charset=utf-8"),
        );
        headers.insert(
            header::CONTENT_DISPOSITION,
            HeaderValue::from_static("attachment; filename=\"latchkey-access-review.csv\""),
        );
        Ok(response)
    }
}

/// The dashboard page of an object, by its id's prefix, when it has one.
fn object_href(id: &str) -> Option<String> {
    let (prefix, _) = id.split_once('_')?;
    let page = match prefix {
        "usr" => "members",
        "bot" => "bots",
        "tnt" => "tenants",
        "rol" => "roles",
        "ak" => return Some("/ui/credentials/api-keys".to_owned()),
        "cr" => return Some("/ui/credentials/authtokens".to_owned()),
        "sshcr" => return Some("/ui/credentials/ssh-keys".to_owned()),
        _ => return None,
    };
    Some(format!("/ui/{page}/{id}"))
}

fn object_link(id: &str) -> Markup {
    html! {
        @match object_href(id) {
            Some(href) => a href=(href) { code { (id) } },
            None => code { (id) },
        }
    }
}

fn principal_text(principal: Principal) -> String {
    match principal {
        Principal::System => "system".to_owned(),
        other => other.id_string(),
    }
}

/// An event's before and after, as the API shows them.
fn change(event: &Event) -> Markup {
    let view = views::event(&Base::Public("".into()), event);
    let pretty = |key: &str| {
        view.get(key)
            .filter(|v| !v.is_null())
            .and_then(|v| serde_json::to_string_pretty(v).ok())
    };
    html! {
        @let (before, after) = (pretty("before"), pretty("after"));
        @if before.is_some() || after.is_some() {
            details {
                summary { "Before and after" }
                div.change {
                    div { strong { "Before" } pre tabindex="0" { (before.as_deref().unwrap_or("(nothing: it was made)")) } }
                    div { strong { "After" } pre tabindex="0" { (after.as_deref().unwrap_or("(nothing: it was removed)")) } }
                }
            }
        }
    }
}

fn events_page(
    console: &Console,
    filters: &Filters,
    events: &[Event],
    next: Option<&str>,
    error: Option<&str>,
) -> Markup {
    html! {
        (error_line(error))
        form.filters method="get" action="/ui/events" {
            div {
                label for="principal" { "Principal" }
                input #principal type="text" name="principal" value=(filters.principal) placeholder="usr_…, bot_… or system";
            }
            div {
                label for="action" { "Action" }
                input #action type="text" name="action" value=(filters.action) placeholder="iam.users.update";
            }
            div {
                label for="object" { "Object" }
                input #object type="text" name="object" value=(filters.object) placeholder="an id";
            }
            div {
                label for="since" { "From (UTC)" }
                input #since type="datetime-local" name="since" value=(filters.since);
            }
            div {
                label for="until" { "To (UTC)" }
                input #until type="datetime-local" name="until" value=(filters.until);
            }
            button type="submit" { "Filter" }
        }
        @if console.may("access_review.get") {
            p { a href="/ui/access-review" { "Access review" } }
        }
        @if events.is_empty() { p { "No events match." } } @else {
            div.scroll { table {
                thead { tr { th { "When" } th { "Who" } th { "Action" } th { "Object" } } }
                tbody {
                    @for event in events {
                        tr {
                            td { (when(event.at)) }
                            td {
                                @let who = principal_text(event.actor.principal);
                                (object_link(&who))
                                @if let Some(credential) = event.actor.credential { br; small { "with " code { (credential.to_string()) } } }
                            }
                            td { code { (event.action.name()) } }
                            td { (object_link(&event.target)) (change(event)) }
                        }
                    }
                }
            } }
        }
        @if let Some(next) = next { p { a href=(next) { "Older events" } } }
    }
}

fn review_page(review: &[ReviewedPrincipal]) -> Markup {
    html! {
        p { "Every member and bot user with a tenant role, and what each role grants today." }
        p { a.button href="/ui/access-review.csv" download="latchkey-access-review.csv" { "Download CSV" } }
        @if review.iter().all(|r| r.assignments.is_empty()) { p { "Nobody has a tenant role." } } @else {
            div.scroll { table {
                thead { tr { th { "Principal" } th { "Tenant" } th { "Role" } th { "Permissions" } } }
                tbody {
                    @for reviewed in review {
                        @for (named, permissions) in &reviewed.assignments {
                            tr {
                                td {
                                    (object_link(&reviewed.principal.id_string())) br;
                                    (reviewed.name)
                                    @if let Some(email) = &reviewed.email { br; small { (email) } }
                                }
                                td { (named.assignment.tenant.map_or_else(|| "all tenants".to_owned(), |t| t.to_string())) }
                                td { (named.role) }
                                td { small { (permissions.join(", ")) } }
                            }
                        }
                    }
                }
            } }
        }
    }
}
