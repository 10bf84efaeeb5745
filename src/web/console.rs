//! A signed-in member's frame: its session (held to the account's dashboard IP
//! restrictions from the request's address, as every session request is), who it is,
//! and what the policies let it do. Pages show only the controls `may` allows; every
//! change still goes through `app`, which asks the policies again and refuses.

use std::collections::BTreeSet;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Response, StatusCode};
use maud::Markup;

use super::{Answer, Csrf, Notice, Web, blocking, page, pages, redirect};
use crate::api::session::session_cookie;
use crate::app::{Me, Member};
use crate::domain::event::{Actor, Principal};
use crate::domain::ip::RestrictionType;
use crate::domain::session::Session;

/// The signed-in member a page is for.
pub(super) struct Console {
    pub session: Session,
    pub member: Member,
    /// The actions the policies allow it (`iam.<resource>.<verb>` on an ordinary object,
    /// and the catalog's permissions outside any tenant).
    allowed: BTreeSet<String>,
    csrf: Csrf,
    /// This dashboard's origin as the member reached it (or the public URL).
    pub origin: String,
}

impl Console {
    /// Whether the policies let the member run `iam.<action>` on an ordinary object
    /// (`action` is `users.create`, say).
    pub fn may(&self, action: &str) -> bool {
        self.allowed.contains(&format!("iam.{action}"))
    }

    pub fn actor(&self) -> Actor {
        Actor {
            principal: Principal::User(self.session.user),
            credential: None,
        }
    }

    pub fn me(&self) -> Me {
        Me {
            user: self.session.user,
            account: self.session.account,
            session: Some(self.session.id),
        }
    }

    pub fn csrf(&self) -> &str {
        &self.csrf.value
    }

    /// The links of the navigation the member may follow.
    pub fn nav(&self) -> Vec<(String, &'static str)> {
        let mut links = vec![
            ("/ui/".to_owned(), "Home"),
            ("/ui/profile".to_owned(), "My profile"),
        ];
        if self.session.enrollment_only {
            return links;
        }
        if self.may("users.list") {
            links.push(("/ui/members".to_owned(), "Team members"));
        }
        if self.may("bot_users.list") {
            links.push(("/ui/bots".to_owned(), "Bot users"));
        }
        if let Some(kind) = super::credentials::first_visible(self) {
            links.push((kind.path(), "Credentials"));
        }
        if self.may("ip_policies.list") {
            links.push(("/ui/ip".to_owned(), "IP restrictions"));
        }
        if self.may("tenants.list") {
            links.push(("/ui/tenants".to_owned(), "Tenants"));
        }
        if self.may("roles.list") {
            links.push(("/ui/roles".to_owned(), "Roles"));
        }
        if self.may("events.list") {
            links.push(("/ui/events".to_owned(), "Events"));
        }
        if self.may("account.get") {
            links.push(("/ui/settings".to_owned(), "Settings"));
        }
        links
    }

    /// A page of the console: the frame (navigation, sign-out) around `body`.
    pub fn render(&self, status: StatusCode, title: &str, body: Markup) -> Response<Full<Bytes>> {
        let mut response = page(status, pages::console(self, title, body));
        self.csrf.keep(&mut response);
        response
    }
}

impl Web {
    /// The request's live session, if its cookie names one.
    pub(super) async fn session(&self, headers: &hyper::HeaderMap) -> Option<Session> {
        let secret = session_cookie(headers)?.to_owned();
        let lk = self.lk();
        blocking(move || lk.session(&secret)).await.ok()
    }

    /// The signed-in member of the request, or the way to sign in; refused with a page
    /// saying which restriction and why when the account's dashboard IP restrictions do
    /// not allow `peer` (a warn-only miss is counted, as for the API).
    pub(super) async fn console(
        &self,
        headers: &hyper::HeaderMap,
        peer: Option<std::net::IpAddr>,
    ) -> Result<Console, Box<Response<Full<Bytes>>>> {
        let Some(session) = self.session(headers).await else {
            return Err(Box::new(redirect("/ui/sign-in")));
        };
        if let Err(refused) = self
            .api
            .gate(session.account, RestrictionType::Dashboard, peer)
        {
            return Err(Box::new(page(
                StatusCode::FORBIDDEN,
                pages::message("Not from this address", &refused.msg),
            )));
        }
        let lk = self.lk();
        let (user, account) = (session.user, session.account);
        let (member, allowed) = blocking(move || {
            let (member, _) = lk.whoami(user, account)?;
            let allowed = lk.own_permissions(account, user)?;
            Ok((member, allowed.into_iter().collect()))
        })
        .await?;
        let host = headers
            .get(hyper::header::HOST)
            .and_then(|v| v.to_str().ok());
        Ok(Console {
            session,
            member,
            allowed,
            csrf: Csrf::of(headers),
            origin: self.base_url(host),
        })
    }

    /// `/ui/`: the signed-in member's home.
    pub(super) async fn home(&self, console: &Console, notice: Option<Notice>) -> Answer {
        Ok(console.render(StatusCode::OK, "Home", pages::home(console, notice)))
    }
}
