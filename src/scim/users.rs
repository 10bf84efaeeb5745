//! A member as a SCIM User (its JSON form, its version) and a User body as a member
//! (what latchkey keeps of it). Attributes outside the User schema are ignored when
//! written and never returned.

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::ScimError;
use super::filter::get_ci;
use super::schema::USER;
use crate::app::{ScimUser, ScimUserSpec};
use crate::domain::scim::{ScimEmail, ScimName};
use crate::domain::time::Timestamp;

/// The User as SCIM shows it, with `meta` (its `version` a hash of the rest).
pub fn to_json(found: &ScimUser, base: &str) -> Value {
    let id = found.user.id.to_string();
    let mut user = Map::new();
    user.insert("schemas".into(), json!([USER]));
    user.insert("id".into(), json!(id));
    match &found.profile {
        Some(profile) => {
            user.insert("userName".into(), json!(profile.user_name));
            if let Some(external) = &profile.external_id {
                user.insert("externalId".into(), json!(external));
            }
            let mut name = Map::new();
            for (key, part) in [
                ("formatted", &profile.name.formatted),
                ("familyName", &profile.name.family_name),
                ("givenName", &profile.name.given_name),
            ] {
                if let Some(part) = part {
                    name.insert(key.into(), json!(part));
                }
            }
            if !name.is_empty() {
                user.insert("name".into(), Value::Object(name));
            }
            if let Some(display) = &profile.display_name {
                user.insert("displayName".into(), json!(display));
            }
            let emails: Vec<Value> = profile
                .emails
                .iter()
                .map(|e| {
                    let mut email = Map::new();
                    email.insert("value".into(), json!(e.value));
                    if let Some(kind) = &e.kind {
                        email.insert("type".into(), json!(kind));
                    }
                    if let Some(primary) = e.primary {
                        email.insert("primary".into(), json!(primary));
                    }
                    Value::Object(email)
                })
                .collect();
            if !emails.is_empty() {
                user.insert("emails".into(), Value::Array(emails));
            }
        }
        // A member SCIM has not written: its email is its userName.
        None => {
            user.insert("userName".into(), json!(found.user.email.as_str()));
            user.insert("displayName".into(), json!(found.user.name));
            user.insert(
                "emails".into(),
                json!([{"value": found.user.email.as_str(), "primary": true}]),
            );
        }
    }
    user.insert(
        "active".into(),
        json!(found.membership.state == crate::domain::user::MemberState::Active),
    );
    let (created, modified) = found.profile.as_ref().map_or(
        (found.membership.joined_at, found.membership.joined_at),
        |p| (p.created_at, p.updated_at),
    );
    with_meta(
        user,
        "User",
        (created, modified),
        &format!("{base}/Users/{id}"),
    )
}

/// A resource of `kind` from its attributes, with `meta`: when it was made and last
/// changed, where it is, and its `version` (a hash of the attributes).
pub fn with_meta(
    mut fields: Map<String, Value>,
    kind: &str,
    (created, modified): (Timestamp, Timestamp),
    location: &str,
) -> Value {
    let version = version_of(&Value::Object(fields.clone()));
    fields.insert(
        "meta".into(),
        json!({
            "resourceType": kind,
            "created": created.to_rfc3339(),
            "lastModified": modified.to_rfc3339(),
            "location": location,
            "version": version,
        }),
    );
    Value::Object(fields)
}

/// A weak ETag of a resource's JSON form without its `meta`.
pub fn version_of(resource: &Value) -> String {
    let digest = Sha256::digest(resource.to_string().as_bytes());
    let hex: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    format!("W/\"{hex}\"")
}

/// The version a User's JSON form carries.
pub fn version(user: &Value) -> Option<&str> {
    user.get("meta")?.get("version")?.as_str()
}

fn text(value: &Value, field: &str) -> Result<Option<String>, ScimError> {
    match value {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s.clone())),
        _ => Err(ScimError::invalid_value(format!("{field} is a string"))),
    }
}

/// A boolean, also as the strings `"True"` / `"False"` (Entra ID sends those).
pub fn boolean(value: &Value, field: &str) -> Result<bool, ScimError> {
    match value {
        Value::Bool(b) => Ok(*b),
        Value::String(s) if s.eq_ignore_ascii_case("true") => Ok(true),
        Value::String(s) if s.eq_ignore_ascii_case("false") => Ok(false),
        _ => Err(ScimError::invalid_value(format!(
            "{field} is true or false"
        ))),
    }
}

/// What a User body (a create, a replacement, or the result of a PATCH) says.
/// Attribute names compare without case; attributes outside the schema are ignored;
/// `id` and `meta` are the server's and ignored too (RFC 7644 §3.5.1).
pub fn spec_from_json(body: &Value) -> Result<ScimUserSpec, ScimError> {
    if !body.is_object() {
        return Err(ScimError::invalid_syntax("a User is a JSON object"));
    }
    let user_name = match get_ci(body, "userName") {
        Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
        _ => {
            return Err(ScimError::invalid_value(
                "userName is required (a non-empty string)",
            ));
        }
    };
    let external_id = get_ci(body, "externalId")
        .map(|v| text(v, "externalId"))
        .transpose()?
        .flatten();
    let name = match get_ci(body, "name") {
        None | Some(Value::Null) => ScimName::default(),
        Some(name @ Value::Object(_)) => {
            let part = |key: &str| {
                get_ci(name, key)
                    .map(|v| text(v, &format!("name.{key}")))
                    .transpose()
                    .map(Option::flatten)
            };
            ScimName {
                formatted: part("formatted")?,
                family_name: part("familyName")?,
                given_name: part("givenName")?,
            }
        }
        Some(_) => return Err(ScimError::invalid_value("name is an object")),
    };
    let display_name = get_ci(body, "displayName")
        .map(|v| text(v, "displayName"))
        .transpose()?
        .flatten();
    let emails = match get_ci(body, "emails") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| {
                let value = get_ci(item, "value")
                    .and_then(Value::as_str)
                    .ok_or_else(|| ScimError::invalid_value("each of emails has a value"))?;
                Ok(ScimEmail {
                    value: value.to_owned(),
                    kind: get_ci(item, "type")
                        .map(|v| text(v, "emails.type"))
                        .transpose()?
                        .flatten(),
                    primary: get_ci(item, "primary")
                        .filter(|v| !v.is_null())
                        .map(|v| boolean(v, "emails.primary"))
                        .transpose()?,
                })
            })
            .collect::<Result<_, ScimError>>()?,
        Some(_) => return Err(ScimError::invalid_value("emails is a list")),
    };
    let active = get_ci(body, "active")
        .filter(|v| !v.is_null())
        .map(|v| boolean(v, "active"))
        .transpose()?
        .unwrap_or(true);
    Ok(ScimUserSpec {
        user_name,
        external_id,
        name,
        display_name,
        emails,
        active,
    })
}

/// `attributes` / `excludedAttributes` (RFC 7644 §3.4.2.5) applied to a resource's JSON
/// form: `schemas` and `id` always stay.
pub fn project(resource: &mut Value, attributes: &[String], excluded: &[String]) {
    let Some(fields) = resource.as_object_mut() else {
        return;
    };
    let bare = |path: &str| {
        let path = if path.to_ascii_lowercase().starts_with("urn:") {
            path.rsplit_once(':').map_or(path, |(_, p)| p)
        } else {
            path
        };
        let (attr, sub) = match path.split_once('.') {
            Some((a, s)) => (a.to_ascii_lowercase(), Some(s.to_ascii_lowercase())),
            None => (path.to_ascii_lowercase(), None),
        };
        (attr, sub)
    };
    let always = |key: &str| key == "schemas" || key == "id";
    if !attributes.is_empty() {
        let wanted: Vec<(String, Option<String>)> = attributes.iter().map(|a| bare(a)).collect();
        fields.retain(|key, value| {
            if always(key) {
                return true;
            }
            let subs: Vec<&Option<String>> = wanted
                .iter()
                .filter(|(a, _)| a.eq_ignore_ascii_case(key))
                .map(|(_, s)| s)
                .collect();
            if subs.is_empty() {
                return false;
            }
            if subs.iter().any(|s| s.is_none()) {
                return true;
            }
            let keep = |object: &mut Map<String, Value>| {
                object.retain(|k, _| {
                    subs.iter()
                        .any(|s| s.as_deref().is_some_and(|s| s.eq_ignore_ascii_case(k)))
                });
            };
            match value {
                Value::Object(object) => keep(object),
                Value::Array(items) => {
                    for item in items.iter_mut() {
                        if let Value::Object(object) = item {
                            keep(object);
                        }
                    }
                }
                _ => {}
            }
            true
        });
    }
    for path in excluded {
        let (attr, sub) = bare(path);
        if always(&attr) {
            continue;
        }
        let key = fields
            .keys()
            .find(|k| k.eq_ignore_ascii_case(&attr))
            .cloned();
        let Some(key) = key else { continue };
        match sub {
            None => {
                fields.remove(&key);
            }
            Some(sub) => match fields.get_mut(&key) {
                Some(Value::Object(object)) => object.retain(|k, _| !k.eq_ignore_ascii_case(&sub)),
                Some(Value::Array(items)) => {
                    for item in items.iter_mut() {
                        if let Value::Object(object) = item {
                            object.retain(|k, _| !k.eq_ignore_ascii_case(&sub));
                        }
                    }
                }
                _ => {}
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_reads_without_case_with_entra_booleans_and_unknown_attributes_ignored() {
        let spec = spec_from_json(&json!({
            "schemas": [USER],
            "UserName": "Dana@Example.com",
            "externalId": "00u1",
            "name": {"givenName": "Dana", "familyname": "Lee"},
            "emails": [{"value": "dana@example.com", "type": "work", "primary": "True"}],
            "active": "False",
            "title": "ignored",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "x"}
        }))
        .unwrap();
        assert_eq!(spec.user_name, "Dana@Example.com");
        assert_eq!(spec.name.family_name.as_deref(), Some("Lee"));
        assert_eq!(spec.emails[0].primary, Some(true));
        assert!(!spec.active);
        for bad in [
            json!({}),
            json!({"userName": ""}),
            json!({"userName": 7}),
            json!({"userName": "a", "emails": "a@b.c"}),
            json!({"userName": "a", "emails": [{"type": "work"}]}),
            json!({"userName": "a", "active": "maybe"}),
            json!({"userName": "a", "name": "Dana"}),
            json!([]),
        ] {
            assert!(spec_from_json(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn attributes_and_excluded_attributes_keep_id_and_schemas() {
        let user = json!({"schemas": [USER], "id": "usr_1", "userName": "a", "externalId": "x",
            "name": {"givenName": "A", "familyName": "B"}, "emails": [{"value": "a@b.c", "type": "work"}]});
        let mut only = user.clone();
        project(
            &mut only,
            &["externalId".into(), "name.givenName".into()],
            &[],
        );
        assert_eq!(
            only,
            json!({"schemas": [USER], "id": "usr_1", "externalId": "x", "name": {"givenName": "A"}})
        );
        let mut without = user.clone();
        project(
            &mut without,
            &[],
            &["name".into(), "emails.type".into(), "id".into()],
        );
        assert_eq!(
            without,
            json!({"schemas": [USER], "id": "usr_1", "userName": "a", "externalId": "x",
                   "emails": [{"value": "a@b.c"}]})
        );
    }
}
