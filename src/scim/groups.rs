//! A SCIM group as a Group (its JSON form, its version) and a Group body as what
//! latchkey keeps (a name, an external id, members of the account).

use serde_json::{Map, Value, json};

use super::ScimError;
use super::filter::get_ci;
use super::schema::GROUP;
use super::users::with_meta;
use crate::app::ScimGroupSpec;
use crate::domain::id::UserId;
use crate::domain::scim::ScimGroup;

/// The Group as SCIM shows it, with `meta` (its `version` a hash of the rest).
pub fn to_json(group: &ScimGroup, base: &str) -> Value {
    let id = group.id.to_string();
    let mut fields = Map::new();
    fields.insert("schemas".into(), json!([GROUP]));
    fields.insert("id".into(), json!(id));
    fields.insert("displayName".into(), json!(group.display_name));
    if let Some(external) = &group.external_id {
        fields.insert("externalId".into(), json!(external));
    }
    if !group.members.is_empty() {
        let members: Vec<Value> = group
            .members
            .iter()
            .map(|m| json!({"value": m.to_string(), "$ref": format!("{base}/Users/{m}"), "type": "User"}))
            .collect();
        fields.insert("members".into(), Value::Array(members));
    }
    with_meta(
        fields,
        "Group",
        (group.created_at, group.updated_at),
        &format!("{base}/Groups/{id}"),
    )
}

/// What a Group body says: `displayName` (required), `externalId`, and `members`
/// (their `value`s: ids of members of the account; a group as a member is refused).
pub fn spec_from_json(body: &Value) -> Result<ScimGroupSpec, ScimError> {
    if !body.is_object() {
        return Err(ScimError::invalid_syntax("a Group is a JSON object"));
    }
    let display_name = match get_ci(body, "displayName") {
        Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
        _ => {
            return Err(ScimError::invalid_value(
                "displayName is required (a non-empty string)",
            ));
        }
    };
    let external_id = match get_ci(body, "externalId") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(ScimError::invalid_value("externalId is a string")),
    };
    let members = match get_ci(body, "members") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| {
                if get_ci(item, "type")
                    .and_then(Value::as_str)
                    .is_some_and(|t| t.eq_ignore_ascii_case("Group"))
                {
                    return Err(ScimError::invalid_value(
                        "a group holds members of the account, not other groups",
                    ));
                }
                let value = get_ci(item, "value")
                    .and_then(Value::as_str)
                    .ok_or_else(|| ScimError::invalid_value("each of members has a value"))?;
                value.parse::<UserId>().map_err(|_| {
                    ScimError::invalid_value(format!(
                        "members: {value:?} is no member of this account"
                    ))
                })
            })
            .collect::<Result<_, ScimError>>()?,
        Some(_) => return Err(ScimError::invalid_value("members is a list")),
    };
    Ok(ScimGroupSpec {
        display_name,
        external_id,
        members,
    })
}
