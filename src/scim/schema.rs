//! What the SCIM endpoint says about itself (RFC 7643 §5–7): its configuration, its
//! resource types and their schemas. The User schema advertises exactly the attributes
//! latchkey stores and returns; providers (and conformance testers) build what they send
//! from it.

use serde_json::{Value, json};

/// The User schema's URN.
pub const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
/// The Group schema's URN.
pub const GROUP: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
/// A list answer.
pub const LIST: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
/// An error answer.
pub const ERROR: &str = "urn:ietf:params:scim:api:messages:2.0:Error";
/// A PATCH request.
pub const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
/// A `POST …/.search` request.
pub const SEARCH: &str = "urn:ietf:params:scim:api:messages:2.0:SearchRequest";
const SPC: &str = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig";
const RESOURCE_TYPE: &str = "urn:ietf:params:scim:schemas:core:2.0:ResourceType";
const SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Schema";

/// The most resources one page holds (`count` above it is lowered to it).
pub const MAX_PAGE: usize = 100;

/// `GET /ServiceProviderConfig`.
pub fn service_provider_config(base: &str) -> Value {
    json!({
        "schemas": [SPC],
        "patch": {"supported": true},
        "bulk": {"supported": false, "maxOperations": 0, "maxPayloadSize": 0},
        "filter": {"supported": true, "maxResults": MAX_PAGE},
        "changePassword": {"supported": false},
        "sort": {"supported": false},
        "etag": {"supported": true},
        "authenticationSchemes": [{
            "type": "oauthbearertoken",
            "name": "SCIM token",
            "description": "A SCIM token an administrator made for the account (lk_sc_…), sent as Authorization: Bearer.",
            "primary": true
        }],
        "meta": {
            "resourceType": "ServiceProviderConfig",
            "location": format!("{base}/ServiceProviderConfig")
        }
    })
}

/// Every resource type.
pub fn resource_types(base: &str) -> Vec<Value> {
    vec![
        resource_type(base, "User", "/Users", "A member of the account", USER),
        resource_type(
            base,
            "Group",
            "/Groups",
            "A group of members of the account",
            GROUP,
        ),
    ]
}

fn resource_type(base: &str, name: &str, endpoint: &str, description: &str, schema: &str) -> Value {
    json!({
        "schemas": [RESOURCE_TYPE],
        "id": name,
        "name": name,
        "endpoint": endpoint,
        "description": description,
        "schema": schema,
        "meta": {
            "resourceType": "ResourceType",
            "location": format!("{base}/ResourceTypes/{name}")
        }
    })
}

/// The schema document `id` of a resource type `name`, with its attributes.
fn schema_document(
    base: &str,
    id: &str,
    name: &str,
    description: &str,
    attributes: Vec<Value>,
) -> Value {
    json!({
        "schemas": [SCHEMA],
        "id": id,
        "name": name,
        "description": description,
        "attributes": attributes,
        "meta": {
            "resourceType": "Schema",
            "location": format!("{base}/Schemas/{id}")
        }
    })
}

fn attribute(name: &str, kind: &str, required: bool, description: &str) -> Value {
    json!({
        "name": name,
        "type": kind,
        "multiValued": false,
        "description": description,
        "required": required,
        "caseExact": false,
        "mutability": "readWrite",
        "returned": "default",
        "uniqueness": "none"
    })
}

/// `attribute` with `key` set to `value`.
fn with(mut attribute: Value, key: &str, value: Value) -> Value {
    if let Some(fields) = attribute.as_object_mut() {
        fields.insert(key.into(), value);
    }
    attribute
}

/// Every schema.
pub fn schemas(base: &str) -> Vec<Value> {
    let user_name = with(
        attribute(
            "userName",
            "string",
            true,
            "Unique in the account (compared without case); kept as the provider sends it",
        ),
        "uniqueness",
        json!("server"),
    );
    let name = json!({
        "name": "name",
        "type": "complex",
        "multiValued": false,
        "description": "The person's name; displayName, else formatted, else given and family names, is the user's name in latchkey",
        "required": false,
        "mutability": "readWrite",
        "returned": "default",
        "uniqueness": "none",
        "subAttributes": [
            attribute("formatted", "string", false, "The full name"),
            attribute("familyName", "string", false, "The family name"),
            attribute("givenName", "string", false, "The given name"),
        ]
    });
    let email_type = with(
        attribute("type", "string", false, "work, home or other"),
        "canonicalValues",
        json!(["work", "home", "other"]),
    );
    let emails = json!({
        "name": "emails",
        "type": "complex",
        "multiValued": true,
        "description": "The primary (else the first) value is the user's email",
        "required": true,
        "mutability": "readWrite",
        "returned": "default",
        "uniqueness": "none",
        "subAttributes": [
            attribute("value", "string", true, "The address"),
            email_type,
            attribute("primary", "boolean", false, "The user's email"),
        ]
    });
    let reference = json!({
        "name": "$ref",
        "type": "reference",
        "referenceTypes": ["User"],
        "multiValued": false,
        "description": "The member's URI",
        "required": false,
        "caseExact": true,
        "mutability": "immutable",
        "returned": "default",
        "uniqueness": "none"
    });
    let members = json!({
        "name": "members",
        "type": "complex",
        "multiValued": true,
        "description": "Members of the account (people, never groups)",
        "required": false,
        "mutability": "readWrite",
        "returned": "default",
        "uniqueness": "none",
        "subAttributes": [
            with(attribute("value", "string", true, "The member's id"), "mutability", json!("immutable")),
            reference,
            with(
                with(attribute("type", "string", false, "User"), "canonicalValues", json!(["User"])),
                "mutability",
                json!("immutable"),
            ),
        ]
    });
    vec![
        schema_document(
            base,
            USER,
            "User",
            "A member of the account",
            vec![
                user_name,
                name,
                attribute(
                    "displayName",
                    "string",
                    false,
                    "The name shown for the member",
                ),
                emails,
                // Required, so providers always say it (a membership is active or not;
                // a body without it is taken as active).
                attribute(
                    "active",
                    "boolean",
                    true,
                    "false disables the membership (its credentials stay but do not work)",
                ),
            ],
        ),
        schema_document(
            base,
            GROUP,
            "Group",
            "A group of members of the account",
            vec![
                attribute(
                    "displayName",
                    "string",
                    true,
                    "The group's name, as the provider sends it",
                ),
                members,
            ],
        ),
    ]
}
