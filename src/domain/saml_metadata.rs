//! A SAML identity provider's metadata (an `EntityDescriptor`), read for what latchkey
//! needs: its entity id, its single sign-on URL for the HTTP-Redirect binding, and its
//! signing certificates. Parsed with no DOCTYPE or entity allowed; nothing in it is
//! trusted beyond these values, which the administrator who gave it vouches for.

use crate::domain::DomainError;

const METADATA: &str = "urn:oasis:names:tc:SAML:2.0:metadata";
const DSIG: &str = "http://www.w3.org/2000/09/xmldsig#";
const REDIRECT: &str = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect";

/// What an identity provider's metadata says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdpMetadata {
    /// Its entity id.
    pub entity_id: String,
    /// Its SSO URL for the HTTP-Redirect binding.
    pub sso_url: String,
    /// Its signing certificates, PEM.
    pub certificates: Vec<String>,
}

fn invalid(why: impl Into<String>) -> DomainError {
    DomainError::invalid("metadata_xml", why)
}

/// Read `xml`, an `EntityDescriptor` with an `IDPSSODescriptor`.
pub fn parse(xml: &str) -> Result<IdpMetadata, DomainError> {
    if xml.len() > 512 * 1024 {
        return Err(invalid("is over 512 KiB"));
    }
    if xml.contains("<!DOCTYPE") || xml.contains("<!ENTITY") {
        return Err(invalid("holds a DOCTYPE or an entity declaration"));
    }
    let doc = uppsala::Parser::new()
        .with_forbid_dtd(true)
        .parse(xml)
        .map_err(|e| invalid(format!("is not well-formed XML: {e}")))?;
    let is = |node: uppsala::NodeId, ns: &str, name: &str| {
        doc.element(node)
            .is_some_and(|e| e.name.matches(Some(ns), name))
    };
    let children = |node: uppsala::NodeId, ns: &'static str, name: &'static str| {
        doc.children(node)
            .into_iter()
            .filter(move |c| is(*c, ns, name))
            .collect::<Vec<_>>()
    };
    let root = doc
        .document_element()
        .filter(|r| is(*r, METADATA, "EntityDescriptor"))
        .ok_or_else(|| invalid("is not an EntityDescriptor"))?;
    let entity_id = doc
        .get_attribute(root, "entityID")
        .filter(|id| !id.trim().is_empty())
        .ok_or_else(|| invalid("names no entityID"))?
        .trim()
        .to_owned();
    let descriptor = *children(root, METADATA, "IDPSSODescriptor")
        .first()
        .ok_or_else(|| invalid("has no IDPSSODescriptor"))?;
    let sso_url = children(descriptor, METADATA, "SingleSignOnService")
        .into_iter()
        .find(|s| doc.get_attribute(*s, "Binding") == Some(REDIRECT))
        .and_then(|s| doc.get_attribute(s, "Location"))
        .ok_or_else(|| invalid("has no SingleSignOnService with the HTTP-Redirect binding"))?
        .trim()
        .to_owned();
    let mut certificates = Vec::new();
    for key in children(descriptor, METADATA, "KeyDescriptor") {
        if doc
            .get_attribute(key, "use")
            .is_some_and(|u| u != "signing")
        {
            continue;
        }
        for info in children(key, DSIG, "KeyInfo") {
            for data in children(info, DSIG, "X509Data") {
                for cert in children(data, DSIG, "X509Certificate") {
                    let body: String = doc
                        .text_content_deep(cert)
                        .chars()
                        .filter(|c| !c.is_ascii_whitespace())
                        .collect();
                    let lines: Vec<&str> = body
                        .as_bytes()
                        .chunks(64)
                        .filter_map(|c| std::str::from_utf8(c).ok())
                        .collect();
                    certificates.push(format!(
                        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
                        lines.join("\n")
                    ));
                }
            }
        }
    }
    if certificates.is_empty() {
        return Err(invalid("has no signing certificate"));
    }
    Ok(IdpMetadata {
        entity_id,
        sso_url,
        certificates,
    })
}
