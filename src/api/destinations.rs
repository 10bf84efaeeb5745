//! `/event_destinations`: where an account's audit trail is streamed (administrators only).

use super::handlers::{Ctx, required, same_id};
use super::request::*;
use super::*;
use crate::app::{DestinationPatch, DestinationSpec};
use crate::domain::destination::{DeliveryStatus, EventDestination, Target};
use crate::domain::id::EventDestinationId;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DestinationBody {
    id: Option<String>,
    description: Option<String>,
    metadata: Option<String>,
    /// ngrok's field; `json` is the one format.
    format: Option<String>,
    enabled: Option<bool>,
    target: Option<TargetBody>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TargetBody {
    https: Option<HttpsBody>,
    syslog: Option<SyslogBody>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HttpsBody {
    url: Option<String>,
    trusted_ca_pem: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SyslogBody {
    address: Option<String>,
    trusted_ca_pem: Option<String>,
}

impl TargetBody {
    fn target(self) -> Result<Target, ApiError> {
        match (self.https, self.syslog) {
            (Some(https), None) => Ok(Target::Https {
                url: required(https.url.as_deref(), "target.https.url")?.to_owned(),
                trusted_ca_pem: https.trusted_ca_pem,
            }),
            (None, Some(syslog)) => Ok(Target::Syslog {
                address: required(syslog.address.as_deref(), "target.syslog.address")?.to_owned(),
                trusted_ca_pem: syslog.trusted_ca_pem,
            }),
            _ => Err(ApiError::field(
                error::INVALID_FIELD,
                "target",
                "target must name exactly one of https or syslog",
            )),
        }
    }
}

fn check_format(format: Option<&str>) -> Result<(), ApiError> {
    match format {
        None | Some("json") => Ok(()),
        Some(other) => Err(ApiError::field(
            error::INVALID_FIELD,
            "format",
            format!("format must be json, not {other:?}"),
        )),
    }
}

impl Ctx {
    fn destination_view(&self, found: &EventDestination, status: &DeliveryStatus) -> Value {
        views::event_destination(&self.base, found, Some(status))
    }

    pub(super) async fn list_event_destinations(self) -> Reply {
        let page = self.page_request::<EventDestinationId>("/event_destinations")?;
        let (lk, actor, account) = self.caller();
        let found = blocking(move || lk.event_destinations(actor, account, page)).await?;
        self.page_reply(
            "/event_destinations",
            "event_destinations",
            &found,
            |(d, _)| d.id,
            |(d, s)| self.destination_view(d, s),
        )
    }

    pub(super) async fn create_event_destination(self) -> Reply {
        let body: DestinationBody = parse(&self.body)?;
        if body.id.is_some() {
            return Err(ApiError::field(
                error::INVALID_FIELD,
                "id",
                "id is chosen by the server",
            ));
        }
        check_format(body.format.as_deref())?;
        let target = body
            .target
            .ok_or_else(|| ApiError::field(error::INVALID_FIELD, "target", "target is required"))?
            .target()?;
        let spec = DestinationSpec {
            description: body.description.unwrap_or_default(),
            metadata: body.metadata.unwrap_or_default(),
            enabled: body.enabled.unwrap_or(true),
            target,
        };
        let (lk, actor, account) = self.caller();
        let (made, status, secret) =
            blocking(move || lk.create_event_destination(actor, account, spec)).await?;
        let mut view = self.destination_view(&made, &status);
        if let Some(fields) = view.as_object_mut() {
            fields.insert("signing_secret".into(), json!(secret.expose()));
        }
        self.created(&view)
    }

    pub(super) async fn get_event_destination(self, id: &str) -> Reply {
        let id: EventDestinationId = path_id(id)?;
        let (lk, actor, account) = self.caller();
        let (found, status) = blocking(move || lk.event_destination(actor, account, id)).await?;
        self.ok(&self.destination_view(&found, &status))
    }

    pub(super) async fn update_event_destination(self, id: &str) -> Reply {
        let id: EventDestinationId = path_id(id)?;
        let body: DestinationBody = parse(&self.body)?;
        same_id(body.id.as_deref(), id)?;
        check_format(body.format.as_deref())?;
        let patch = DestinationPatch {
            description: body.description,
            metadata: body.metadata,
            enabled: body.enabled,
            target: body.target.map(TargetBody::target).transpose()?,
        };
        let (lk, actor, account) = self.caller();
        let (found, status) =
            blocking(move || lk.update_event_destination(actor, account, id, patch)).await?;
        self.ok(&self.destination_view(&found, &status))
    }

    pub(super) async fn delete_event_destination(self, id: &str) -> Reply {
        let id: EventDestinationId = path_id(id)?;
        let (lk, actor, account) = self.caller();
        blocking(move || lk.delete_event_destination(actor, account, id)).await?;
        Ok(no_content())
    }
}
