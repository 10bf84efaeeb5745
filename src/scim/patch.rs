//! SCIM PATCH (RFC 7644 §3.5.2) applied to a User's JSON form: `add`, `replace` and
//! `remove` (any case: Entra ID sends `Replace`), with and without paths, with value
//! filters (`emails[type eq "work"].value`), and without a path carrying an object of
//! attributes (whose keys may themselves be paths, as Entra ID sends `name.givenName`).
//! The result is read back as a whole User, so every rule of a replacement holds.

use serde_json::{Map, Value};

use super::ScimError;
use super::filter::{self, Filter, Op, PatchPath};

/// The most operations in one PATCH.
const MAX_OPERATIONS: usize = 100;

/// What PATCH may write of a resource type: its writable attributes and their
/// sub-attributes by lower-case name, which are multi-valued, which are complex.
pub struct Shape {
    canonical: fn(&str) -> Option<&'static str>,
    canonical_sub: fn(&str, &str) -> Option<&'static str>,
    multi: &'static [&'static str],
    complex: &'static [&'static str],
    read_only: &'static [&'static str],
}

impl Shape {
    /// Whether `attr` is the server's own (never written by PATCH).
    fn is_read_only(&self, attr: &str) -> bool {
        self.read_only.iter().any(|r| r.eq_ignore_ascii_case(attr))
    }
}

/// A User's shape.
pub const USER: Shape = Shape {
    canonical: |attr| match attr {
        "username" => Some("userName"),
        "externalid" => Some("externalId"),
        "name" => Some("name"),
        "displayname" => Some("displayName"),
        "emails" => Some("emails"),
        "active" => Some("active"),
        _ => None,
    },
    canonical_sub: |attr, sub| match (attr, sub) {
        ("name", "formatted") => Some("formatted"),
        ("name", "familyname") => Some("familyName"),
        ("name", "givenname") => Some("givenName"),
        ("emails", "value") => Some("value"),
        ("emails", "type") => Some("type"),
        ("emails", "primary") => Some("primary"),
        _ => None,
    },
    multi: &["emails"],
    complex: &["name"],
    read_only: &["id", "meta", "schemas", "groups"],
};

/// A Group's shape.
pub const GROUP: Shape = Shape {
    canonical: |attr| match attr {
        "displayname" => Some("displayName"),
        "externalid" => Some("externalId"),
        "members" => Some("members"),
        _ => None,
    },
    canonical_sub: |attr, sub| match (attr, sub) {
        ("members", "value") => Some("value"),
        ("members", "$ref") => Some("$ref"),
        ("members", "type") => Some("type"),
        ("members", "display") => Some("display"),
        _ => None,
    },
    multi: &["members"],
    complex: &[],
    read_only: &["id", "meta", "schemas"],
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Add,
    Replace,
    Remove,
}

/// Apply a PATCH body's operations to `user` (a resource's JSON form without `meta`)
/// of `shape`.
pub fn apply(user: &mut Value, body: &Value, shape: &Shape) -> Result<(), ScimError> {
    super::expect_schema(body, super::schema::PATCH_OP)?;
    let operations = filter::get_ci(body, "Operations")
        .and_then(Value::as_array)
        .ok_or_else(|| ScimError::invalid_syntax("a PATCH body has Operations (a list)"))?;
    if operations.is_empty() || operations.len() > MAX_OPERATIONS {
        return Err(ScimError::invalid_syntax(format!(
            "a PATCH holds 1 to {MAX_OPERATIONS} operations"
        )));
    }
    for operation in operations {
        let kind = match filter::get_ci(operation, "op")
            .and_then(Value::as_str)
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("add") => Kind::Add,
            Some("replace") => Kind::Replace,
            Some("remove") => Kind::Remove,
            _ => {
                return Err(ScimError::invalid_syntax(
                    "each operation's op is add, replace or remove",
                ));
            }
        };
        let value = filter::get_ci(operation, "value");
        match filter::get_ci(operation, "path").and_then(Value::as_str) {
            Some(path) => one(user, kind, path, value, shape)?,
            None => {
                if kind == Kind::Remove {
                    return Err(ScimError::no_target("remove needs a path"));
                }
                let Some(Value::Object(attributes)) = value else {
                    return Err(ScimError::invalid_value(
                        "an operation without a path carries an object of attributes",
                    ));
                };
                for (path, value) in attributes {
                    // The schema's URN as a key holds its attributes (RFC 7644 §3.5.2).
                    if path.to_ascii_lowercase().starts_with("urn:") && value.is_object() {
                        if (path.eq_ignore_ascii_case(super::schema::USER)
                            || path.eq_ignore_ascii_case(super::schema::GROUP))
                            && let Value::Object(inner) = value
                        {
                            for (path, value) in inner {
                                one(user, kind, path, Some(value), shape)?;
                            }
                        }
                        continue;
                    }
                    // The server's own attributes in an object of attributes are left as
                    // they are (Okta sends the group's `id` in a replace).
                    if shape.is_read_only(path) {
                        continue;
                    }
                    one(user, kind, path, Some(value), shape)?;
                }
            }
        }
    }
    Ok(())
}

fn object(user: &mut Value) -> Result<&mut Map<String, Value>, ScimError> {
    user.as_object_mut()
        .ok_or_else(|| ScimError::invalid_syntax("a User is a JSON object"))
}

/// One operation on one path.
fn one(
    user: &mut Value,
    kind: Kind,
    path: &str,
    value: Option<&Value>,
    shape: &Shape,
) -> Result<(), ScimError> {
    let PatchPath {
        attr,
        filter: selector,
        sub,
    } = filter::parse_path(path).map_err(|e| ScimError::invalid_path(e.0))?;
    if shape.is_read_only(&attr) {
        return Err(ScimError::mutability(format!("{attr} is read-only")));
    }
    // Attributes outside the schema are ignored, as in a whole resource.
    let Some(attr) = (shape.canonical)(&attr) else {
        return Ok(());
    };
    let sub = match &sub {
        Some(sub) => match (shape.canonical_sub)(attr, sub) {
            Some(sub) => Some(sub),
            None => return Ok(()),
        },
        None => None,
    };
    let needs_value = || {
        value
            .cloned()
            .ok_or_else(|| ScimError::invalid_value(format!("{path}: {kind:?} needs a value")))
    };
    let fields = object(user)?;
    let multi = shape.multi.contains(&attr);
    match (selector, sub) {
        (None, None) => match kind {
            Kind::Remove => {
                match (multi, value) {
                    // Remove the given values only (Entra ID removes members so).
                    (true, Some(given)) if !given.is_null() => {
                        let given: Vec<Value> = as_list(given.clone());
                        if let Some(Value::Array(items)) = fields.get_mut(attr) {
                            items.retain(|item| {
                                !given.iter().any(|g| {
                                    filter::get_ci(g, "value").is_some()
                                        && filter::get_ci(g, "value")
                                            == filter::get_ci(item, "value")
                                })
                            });
                        }
                    }
                    _ => {
                        fields.remove(attr);
                    }
                }
            }
            Kind::Add if multi => {
                let items = fields
                    .entry(attr)
                    .or_insert_with(|| Value::Array(Vec::new()));
                if !items.is_array() {
                    *items = Value::Array(Vec::new());
                }
                if let Value::Array(items) = items {
                    for value in as_list(needs_value()?) {
                        if !items.contains(&value) {
                            items.push(value);
                        }
                    }
                }
            }
            Kind::Replace if multi => {
                fields.insert(attr.to_owned(), Value::Array(as_list(needs_value()?)));
            }
            // A complex attribute's given sub-attributes replace or add to its own.
            _ if shape.complex.contains(&attr) => {
                let given = needs_value()?;
                let Value::Object(given) = given else {
                    return Err(ScimError::invalid_value("name is an object"));
                };
                let name = fields
                    .entry(attr)
                    .or_insert_with(|| Value::Object(Map::new()));
                if !name.is_object() {
                    *name = Value::Object(Map::new());
                }
                if let Value::Object(name) = name {
                    for (key, part) in given {
                        let key = (shape.canonical_sub)(attr, &key.to_ascii_lowercase())
                            .map_or(key, str::to_owned);
                        name.insert(key, part);
                    }
                }
            }
            _ => {
                fields.insert(attr.to_owned(), needs_value()?);
            }
        },
        (None, Some(sub)) => {
            if multi {
                if let Some(Value::Array(items)) = fields.get_mut(attr) {
                    for item in items.iter_mut() {
                        set_sub(item, sub, kind, value)?;
                    }
                }
            } else {
                let target = fields
                    .entry(attr)
                    .or_insert_with(|| Value::Object(Map::new()));
                if !target.is_object() {
                    *target = Value::Object(Map::new());
                }
                set_sub(target, sub, kind, value)?;
                if target.as_object().is_some_and(Map::is_empty) {
                    fields.remove(attr);
                }
            }
        }
        (Some(selector), sub) => {
            if !multi {
                return Err(ScimError::invalid_path(format!(
                    "{attr} is not multi-valued: it takes no value filter"
                )));
            }
            let items = fields
                .entry(attr)
                .or_insert_with(|| Value::Array(Vec::new()));
            if !items.is_array() {
                *items = Value::Array(Vec::new());
            }
            let Value::Array(items) = items else {
                return Ok(());
            };
            let matched: Vec<usize> = items
                .iter()
                .enumerate()
                .filter(|(_, item)| filter::matches(&selector, item))
                .map(|(i, _)| i)
                .collect();
            match (kind, sub) {
                (Kind::Remove, None) => {
                    let mut i = 0;
                    items.retain(|_| {
                        let keep = !matched.contains(&i);
                        i += 1;
                        keep
                    });
                }
                (Kind::Remove, Some(sub)) => {
                    for i in matched {
                        if let Some(item) = items.get_mut(i) {
                            set_sub(item, sub, kind, value)?;
                        }
                    }
                }
                (_, _) if matched.is_empty() => {
                    // A value that is not there yet: made from the filter when it is a
                    // plain `sub eq "…"` (Entra ID adds `emails[type eq "work"].value`).
                    let Some(mut made) = seed(&selector, attr, shape) else {
                        return Err(ScimError::no_target(format!(
                            "no value of {attr} matches the filter"
                        )));
                    };
                    match sub {
                        Some(sub) => set_sub(&mut made, sub, Kind::Add, value)?,
                        None => merge(&mut made, needs_value()?)?,
                    }
                    items.push(made);
                }
                (Kind::Replace, None) => {
                    let given = needs_value()?;
                    for i in matched {
                        if let Some(item) = items.get_mut(i) {
                            *item = given.clone();
                        }
                    }
                }
                (_, None) => {
                    let given = needs_value()?;
                    for i in matched {
                        if let Some(item) = items.get_mut(i) {
                            merge(item, given.clone())?;
                        }
                    }
                }
                (_, Some(sub)) => {
                    for i in matched {
                        if let Some(item) = items.get_mut(i) {
                            set_sub(item, sub, kind, value)?;
                        }
                    }
                }
            }
        }
    }
    Ok(())
}

/// A list of values: a list as given, one value as a list of one.
fn as_list(value: Value) -> Vec<Value> {
    match value {
        Value::Array(items) => items,
        Value::Null => Vec::new(),
        other => vec![other],
    }
}

fn set_sub(
    target: &mut Value,
    sub: &str,
    kind: Kind,
    value: Option<&Value>,
) -> Result<(), ScimError> {
    let Value::Object(object) = target else {
        return Err(ScimError::invalid_path(format!(
            "{sub}: not a complex value"
        )));
    };
    object.retain(|k, _| !k.eq_ignore_ascii_case(sub) || k == sub);
    match kind {
        Kind::Remove => {
            object.remove(sub);
        }
        Kind::Add | Kind::Replace => {
            let value = value
                .cloned()
                .ok_or_else(|| ScimError::invalid_value(format!("{sub} needs a value")))?;
            object.insert(sub.to_owned(), value);
        }
    }
    Ok(())
}

fn merge(target: &mut Value, given: Value) -> Result<(), ScimError> {
    match (target, given) {
        (Value::Object(target), Value::Object(given)) => {
            for (key, value) in given {
                target.insert(key, value);
            }
            Ok(())
        }
        _ => Err(ScimError::invalid_value(
            "a value of a complex attribute is an object",
        )),
    }
}

/// The value a plain `sub eq "…"` filter describes (to add when none matches).
fn seed(selector: &Filter, attr: &str, shape: &Shape) -> Option<Value> {
    match selector {
        Filter::Compare(path, Op::Eq, wanted) if path.sub.is_none() => {
            let key = (shape.canonical_sub)(attr, &path.attr)?;
            let mut made = Map::new();
            made.insert(key.to_owned(), wanted.clone());
            Some(Value::Object(made))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn user() -> Value {
        json!({
            "schemas": [super::super::schema::USER],
            "id": "usr_1",
            "userName": "dana@example.com",
            "name": {"givenName": "Dana", "familyName": "Lee"},
            "emails": [{"value": "dana@example.com", "type": "work", "primary": true}],
            "active": true
        })
    }

    fn patched(ops: Value) -> Result<Value, ScimError> {
        let mut u = user();
        apply(
            &mut u,
            &json!({"schemas": [super::super::schema::PATCH_OP], "Operations": ops}),
            &USER,
        )?;
        Ok(u)
    }

    #[test]
    fn entra_operations_capitalised_pathless_with_string_booleans() {
        let u = patched(json!([
            {"op": "Replace", "path": "active", "value": "False"},
            {"op": "Add", "value": {"displayName": "Dana L", "name.givenName": "Dee"}},
            {"op": "Add", "path": "emails[type eq \"home\"].value", "value": "dana@home.example"},
            {"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "dana@corp.example"}
        ]))
        .unwrap();
        assert_eq!(u["active"], "False");
        assert_eq!(u["displayName"], "Dana L");
        assert_eq!(u["name"], json!({"givenName": "Dee", "familyName": "Lee"}));
        assert_eq!(
            u["emails"],
            json!([
                {"value": "dana@corp.example", "type": "work", "primary": true},
                {"type": "home", "value": "dana@home.example"}
            ])
        );
    }

    #[test]
    fn add_replace_and_remove_with_and_without_paths() {
        let u = patched(json!([
            {"op": "add", "path": "externalId", "value": "00u1"},
            {"op": "remove", "path": "name.familyName"},
            {"op": "add", "path": "emails", "value": [{"value": "b@example.com", "type": "other"}]},
            {"op": "remove", "path": "emails[type eq \"work\"]"},
            {"op": "replace", "path": "userName", "value": "DANA"}
        ]))
        .unwrap();
        assert_eq!(u["externalId"], "00u1");
        assert_eq!(u["name"], json!({"givenName": "Dana"}));
        assert_eq!(
            u["emails"],
            json!([{"value": "b@example.com", "type": "other"}])
        );
        assert_eq!(u["userName"], "DANA");
        let u = patched(
            json!([{"op": "remove", "path": "name"}, {"op": "replace", "value": {"emails": []}}]),
        )
        .unwrap();
        assert!(u.get("name").is_none());
        assert_eq!(u["emails"], json!([]));
        let u = patched(
            json!([{"op": "remove", "path": "emails", "value": [{"value": "dana@example.com"}]}]),
        )
        .unwrap();
        assert_eq!(u["emails"], json!([]));
        // Attributes outside the schema are ignored.
        let u = patched(json!([{"op": "add", "path": "title", "value": "x"},
                               {"op": "replace", "value": {"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "y"}}}]))
            .unwrap();
        assert_eq!(u, user());
    }

    #[test]
    fn refusals() {
        for (ops, kind) in [
            (json!([]), "invalidSyntax"),
            (
                json!([{"op": "move", "path": "userName", "value": "x"}]),
                "invalidSyntax",
            ),
            (json!([{"op": "remove"}]), "noTarget"),
            (
                json!([{"op": "replace", "path": "id", "value": "usr_2"}]),
                "mutability",
            ),
            (
                json!([{"op": "replace", "path": "meta.created", "value": "x"}]),
                "mutability",
            ),
            (
                json!([{"op": "replace", "path": "userName[value eq \"x\"]", "value": "x"}]),
                "invalidPath",
            ),
            (
                json!([{"op": "replace", "path": "emails[type eq ", "value": "x"}]),
                "invalidPath",
            ),
            (
                json!([{"op": "replace", "path": "emails[value co \"zzz\"].type", "value": "x"}]),
                "noTarget",
            ),
            (
                json!([{"op": "replace", "value": "not an object"}]),
                "invalidValue",
            ),
            (json!([{"op": "add", "path": "userName"}]), "invalidValue"),
        ] {
            let err = patched(ops.clone()).unwrap_err();
            assert_eq!(err.scim_type, Some(kind), "{ops}: {err:?}");
        }
        let mut u = user();
        assert!(apply(&mut u, &json!({"schemas": []}), &USER).is_err());
    }
}
