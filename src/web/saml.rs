//! SAML 2.0 responses, checked: the XML signature through `bergshamra` (pure Rust,
//! xmlsec's port; it trusts only the certificates the provider is configured with, and
//! refuses duplicate IDs), and around it what a library does not decide for a service
//! provider. Before any signature is checked: no DOCTYPE or entity, exactly one assertion
//! and no encrypted one, and every signature's SignedInfo holds only exclusive c14n,
//! RSA/ECDSA with SHA-256 or stronger, SHA-256 or stronger digests, the enveloped-signature
//! and exclusive c14n transforms, and `#ID` references (so SHA-1, XSLT, XPath and external
//! references never run). After: the signature must cover the Response root or the
//! assertion itself, and only that signed assertion is read; its issuer, audience,
//! recipient, destination, `InResponseTo` and validity window are checked, and text is
//! read with comments skipped (a comment inside a NameID cannot cut it short).
//!
//! Also here: latchkey's AuthnRequest (HTTP-Redirect binding: DEFLATE, base64, unsigned)
//! and its service-provider metadata, one entity per provider connection.

use base64ct::Encoding;
use bergshamra_dsig::{DsigContext, VerifyResult, verify::verify_all_document_with_source};
use bergshamra_keys::{KeysManager, loader};
use uppsala::{Document, NodeId};

use crate::app::ExternalLogin;
use crate::domain::federation::ClaimNames;

const PROTOCOL: &str = "urn:oasis:names:tc:SAML:2.0:protocol";
const ASSERTION: &str = "urn:oasis:names:tc:SAML:2.0:assertion";
const DSIG: &str = "http://www.w3.org/2000/09/xmldsig#";
const EXC_C14N: &str = "http://www.w3.org/2001/10/xml-exc-c14n#";
const ENVELOPED: &str = "http://www.w3.org/2000/09/xmldsig#enveloped-signature";
const SUCCESS: &str = "urn:oasis:names:tc:SAML:2.0:status:Success";
const BEARER: &str = "urn:oasis:names:tc:SAML:2.0:cm:bearer";
/// Signature algorithms accepted: RSA (PKCS#1 v1.5 and PSS) and ECDSA with SHA-2.
const SIGNATURES: [&str; 9] = [
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384",
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512",
    "http://www.w3.org/2007/05/xmldsig-more#sha256-rsa-MGF1",
    "http://www.w3.org/2007/05/xmldsig-more#sha384-rsa-MGF1",
    "http://www.w3.org/2007/05/xmldsig-more#sha512-rsa-MGF1",
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256",
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384",
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha512",
];
/// Digest algorithms accepted.
const DIGESTS: [&str; 3] = [
    "http://www.w3.org/2001/04/xmlenc#sha256",
    "http://www.w3.org/2001/04/xmldsig-more#sha384",
    "http://www.w3.org/2001/04/xmlenc#sha512",
];
/// Clock skew allowed on the validity window.
const SKEW_SECS: i64 = 60;

/// `value` escaped for an XML attribute or text.
fn escape(value: &str) -> String {
    value
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// An AuthnRequest for the provider at `sso_url`, as the HTTP-Redirect binding carries it:
/// the URL to send the browser to (with `relay_state`), and the request's ID (the answer
/// must name it in `InResponseTo`).
pub(super) fn authn_request(
    sso_url: &str,
    sp_entity_id: &str,
    acs_url: &str,
    relay_state: &str,
    now: time::OffsetDateTime,
) -> Result<(String, String), String> {
    use std::io::Write;
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|_| "no randomness for a request ID".to_owned())?;
    let id = format!(
        "_{}",
        bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
    );
    let instant = now
        .replace_nanosecond(0)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .ok_or("the time does not format")?;
    let xml = format!(
        r#"<samlp:AuthnRequest xmlns:samlp="{PROTOCOL}" xmlns:saml="{ASSERTION}" ID="{id}" Version="2.0" IssueInstant="{instant}" Destination="{}" AssertionConsumerServiceURL="{}" ProtocolBinding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"><saml:Issuer>{}</saml:Issuer><samlp:NameIDPolicy AllowCreate="true"/></samlp:AuthnRequest>"#,
        escape(sso_url),
        escape(acs_url),
        escape(sp_entity_id),
    );
    let mut deflate =
        flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    deflate
        .write_all(xml.as_bytes())
        .map_err(|e| format!("the request does not compress: {e}"))?;
    let deflated = deflate
        .finish()
        .map_err(|e| format!("the request does not compress: {e}"))?;
    let encoded = base64ct::Base64::encode_string(&deflated);
    let query: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("SAMLRequest", &encoded)
        .append_pair("RelayState", relay_state)
        .finish();
    let join = if sso_url.contains('?') { '&' } else { '?' };
    Ok((format!("{sso_url}{join}{query}"), id))
}

/// latchkey's service-provider metadata for one provider connection.
pub(super) fn metadata(sp_entity_id: &str, acs_url: &str, want_assertions_signed: bool) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID="{}"><md:SPSSODescriptor AuthnRequestsSigned="false" WantAssertionsSigned="{want_assertions_signed}" protocolSupportEnumeration="{PROTOCOL}"><md:NameIDFormat>urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress</md:NameIDFormat><md:NameIDFormat>urn:oasis:names:tc:SAML:2.0:nameid-format:persistent</md:NameIDFormat><md:AssertionConsumerService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" Location="{}" index="0" isDefault="true"/></md:SPSSODescriptor></md:EntityDescriptor>"#,
        escape(sp_entity_id),
        escape(acs_url),
    )
}

/// What a response must match.
#[derive(Debug)]
pub(super) struct Expected<'a> {
    /// The provider's entity id (the assertion's issuer).
    pub idp_entity_id: &'a str,
    /// latchkey's entity id for this provider (the audience).
    pub sp_entity_id: &'a str,
    /// latchkey's ACS URL (the destination and recipient).
    pub acs_url: &'a str,
    /// The AuthnRequest's ID (SP-initiated), or `None` for an IdP-initiated response,
    /// which must then name none.
    pub in_response_to: Option<&'a str>,
    /// Require the assertion itself to be signed.
    pub want_assertions_signed: bool,
    /// Attribute names to read.
    pub attributes: &'a ClaimNames,
    /// Now, in seconds since the epoch.
    pub now: i64,
}

/// A response that passed every check.
#[derive(Debug)]
pub(super) struct Verified {
    /// Who, as latchkey's flows take it (the subject is the NameID).
    pub login: ExternalLogin,
    /// The assertion's ID (remembered until it expires, so a replay fails).
    pub assertion_id: String,
    /// When the assertion stops being acceptable (seconds since the epoch).
    pub not_on_or_after: i64,
}

fn is(doc: &Document<'_>, node: NodeId, namespace: &str, name: &str) -> bool {
    doc.element(node)
        .is_some_and(|e| e.name.matches(Some(namespace), name))
}

fn children<'d>(
    doc: &'d Document<'_>,
    node: NodeId,
    namespace: &'d str,
    name: &'d str,
) -> impl Iterator<Item = NodeId> + 'd {
    doc.children(node)
        .into_iter()
        .filter(move |c| is(doc, *c, namespace, name))
}

/// The one child `namespace:name` of `node`; none or several is a refusal.
fn one(doc: &Document<'_>, node: NodeId, namespace: &str, name: &str) -> Result<NodeId, String> {
    let mut found = children(doc, node, namespace, name);
    match (found.next(), found.next()) {
        (Some(only), None) => Ok(only),
        (None, _) => Err(format!("the response has no {name} where one belongs")),
        (Some(_), Some(_)) => Err(format!("the response has more than one {name}")),
    }
}

fn attribute<'d>(doc: &'d Document<'_>, node: NodeId, name: &str) -> Option<&'d str> {
    doc.get_attribute(node, name)
}

/// Every element `namespace:name` under `node` (itself included), in document order.
fn descendants(doc: &Document<'_>, node: NodeId, namespace: &str, name: &str) -> Vec<NodeId> {
    let mut found = Vec::new();
    let mut stack = vec![node];
    while let Some(at) = stack.pop() {
        if is(doc, at, namespace, name) {
            found.push(at);
        }
        let mut kids = doc.children(at);
        kids.reverse();
        stack.extend(kids);
    }
    found
}

/// An element's text, comments skipped; an element with element children is refused.
fn text(doc: &Document<'_>, node: NodeId, what: &str) -> Result<String, String> {
    if doc.children(node).iter().any(|c| doc.element(*c).is_some()) {
        return Err(format!("the {what} holds elements where text belongs"));
    }
    Ok(doc.text_content_deep(node).trim().to_owned())
}

fn seconds(value: &str, what: &str) -> Result<i64, String> {
    time::OffsetDateTime::parse(value, &time::format_description::well_known::Rfc3339)
        .map(|t| t.unix_timestamp())
        .map_err(|_| format!("the {what} {value:?} is not a time"))
}

/// Only what latchkey allows may run: check every signature's SignedInfo before any is
/// verified.
fn check_signed_info(doc: &Document<'_>, signature: NodeId) -> Result<(), String> {
    let info = one(doc, signature, DSIG, "SignedInfo")?;
    let algorithm = |node: Result<NodeId, String>| -> Result<String, String> {
        let node = node?;
        Ok(attribute(doc, node, "Algorithm")
            .unwrap_or_default()
            .to_owned())
    };
    if algorithm(one(doc, info, DSIG, "CanonicalizationMethod"))? != EXC_C14N {
        return Err("the signature's canonicalization is not exclusive c14n".into());
    }
    let method = algorithm(one(doc, info, DSIG, "SignatureMethod"))?;
    if !SIGNATURES.contains(&method.as_str()) {
        return Err(format!(
            "the signature algorithm {method} is refused (SHA-1 and anything but RSA or ECDSA with SHA-2)"
        ));
    }
    let references: Vec<NodeId> = children(doc, info, DSIG, "Reference").collect();
    if references.is_empty() {
        return Err("the signature references nothing".into());
    }
    for reference in references {
        let uri = attribute(doc, reference, "URI").unwrap_or_default();
        let id = uri.strip_prefix('#').unwrap_or_default();
        if id.is_empty()
            || !id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        {
            return Err(format!(
                "the signature references {uri:?}, not an element by its ID"
            ));
        }
        let digest = algorithm(one(doc, reference, DSIG, "DigestMethod"))?;
        if !DIGESTS.contains(&digest.as_str()) {
            return Err(format!(
                "the digest algorithm {digest} is refused (SHA-1 among them)"
            ));
        }
        let transforms = one(doc, reference, DSIG, "Transforms")?;
        let used: Vec<String> = children(doc, transforms, DSIG, "Transform")
            .map(|t| {
                attribute(doc, t, "Algorithm")
                    .unwrap_or_default()
                    .to_owned()
            })
            .collect();
        if used != [ENVELOPED, EXC_C14N] {
            return Err(format!(
                "the signature's transforms {used:?} are refused (only enveloped-signature then exclusive c14n)"
            ));
        }
    }
    Ok(())
}

/// Check `xml`, a SAML Response, against the provider's `certificates` (PEM) and
/// `expected`.
pub(super) fn verify(
    xml: &str,
    certificates: &[String],
    expected: &Expected<'_>,
) -> Result<Verified, String> {
    if xml.contains("<!DOCTYPE") || xml.contains("<!ENTITY") {
        return Err("the response holds a DOCTYPE or an entity declaration".into());
    }
    let doc = uppsala::Parser::new()
        .with_forbid_dtd(true)
        .parse(xml)
        .map_err(|e| format!("the response is not well-formed XML: {e}"))?;
    let root = doc
        .document_element()
        .filter(|r| is(&doc, *r, PROTOCOL, "Response"))
        .ok_or("the document is not a SAML Response")?;
    // Exactly one assertion anywhere (a wrapped copy hides in Extensions or a
    // signature's Object), none encrypted, and it is the Response's own child.
    let assertions = descendants(&doc, root, ASSERTION, "Assertion");
    if !descendants(&doc, root, ASSERTION, "EncryptedAssertion").is_empty() {
        return Err(
            "the response holds an encrypted assertion, which latchkey does not take".into(),
        );
    }
    let assertion = match assertions.as_slice() {
        [only] if doc.parent(*only) == Some(root) => *only,
        [_] => return Err("the assertion is not where a Response holds it".into()),
        [] => return Err("the response holds no assertion".into()),
        _ => return Err("the response holds more than one assertion".into()),
    };
    let signatures = descendants(&doc, root, DSIG, "Signature");
    if signatures.is_empty() {
        return Err("the response is not signed".into());
    }
    for signature in &signatures {
        check_signed_info(&doc, *signature)?;
    }
    let mut keys = KeysManager::new();
    for pem in certificates {
        let key = loader::load_x509_cert_pem(pem.as_bytes())
            .map_err(|e| format!("a configured certificate does not load: {e}"))?;
        keys.add_key(key);
    }
    let context = DsigContext::new(keys);
    let results = verify_all_document_with_source(&context, &doc, Some(xml))
        .map_err(|e| format!("the signature does not verify: {e}"))?;
    let (mut response_signed, mut assertion_signed) = (false, false);
    for result in results {
        match result {
            VerifyResult::Valid {
                signature_node,
                references,
                ..
            } => {
                let parent = doc.parent(signature_node);
                let covers = |node: NodeId| {
                    parent == Some(node)
                        && references
                            .iter()
                            .any(|r| r.resolved_node == Some(node) && r.digest_verified)
                };
                response_signed |= covers(root);
                assertion_signed |= covers(assertion);
            }
            VerifyResult::Invalid { reason } => {
                return Err(format!("a signature does not verify: {reason}"));
            }
            #[allow(unreachable_patterns)]
            _ => return Err("a signature does not verify".into()),
        }
    }
    if expected.want_assertions_signed && !assertion_signed {
        return Err("the assertion itself is not signed, and this provider must sign it".into());
    }
    if !response_signed && !assertion_signed {
        return Err("no signature covers the response or its assertion".into());
    }
    check_response(&doc, root, expected)?;
    read_assertion(&doc, assertion, expected)
}

fn check_in_response_to(value: Option<&str>, expected: &Expected<'_>) -> Result<(), String> {
    match (value, expected.in_response_to) {
        (Some(given), Some(asked)) if given == asked => Ok(()),
        (None, None) => Ok(()),
        (Some(_), None) => Err("the response answers a request this browser did not make".into()),
        (_, Some(_)) => Err("the response does not answer this browser's request".into()),
    }
}

fn check_response(doc: &Document<'_>, root: NodeId, expected: &Expected<'_>) -> Result<(), String> {
    if attribute(doc, root, "Version") != Some("2.0") {
        return Err("the response is not SAML 2.0".into());
    }
    if attribute(doc, root, "Destination") != Some(expected.acs_url) {
        return Err("the response's Destination is not this service provider's ACS URL".into());
    }
    check_in_response_to(attribute(doc, root, "InResponseTo"), expected)?;
    let status = one(doc, root, PROTOCOL, "Status")?;
    let code = one(doc, status, PROTOCOL, "StatusCode")?;
    if attribute(doc, code, "Value") != Some(SUCCESS) {
        return Err(format!(
            "the provider answered {}",
            attribute(doc, code, "Value").unwrap_or("no status")
        ));
    }
    for issuer in children(doc, root, ASSERTION, "Issuer") {
        if text(doc, issuer, "Issuer")? != expected.idp_entity_id {
            return Err("the response's Issuer is not the provider".into());
        }
    }
    Ok(())
}

fn read_assertion(
    doc: &Document<'_>,
    assertion: NodeId,
    expected: &Expected<'_>,
) -> Result<Verified, String> {
    let now = expected.now;
    if text(doc, one(doc, assertion, ASSERTION, "Issuer")?, "Issuer")? != expected.idp_entity_id {
        return Err("the assertion's Issuer is not the provider".into());
    }
    let id = attribute(doc, assertion, "ID")
        .filter(|id| !id.is_empty())
        .ok_or("the assertion has no ID")?
        .to_owned();
    // The subject, confirmed for this service provider.
    let subject = one(doc, assertion, ASSERTION, "Subject")?;
    let name_id = text(doc, one(doc, subject, ASSERTION, "NameID")?, "NameID")?;
    if name_id.is_empty() {
        return Err("the assertion's NameID is empty".into());
    }
    let mut confirmed_until = None;
    for confirmation in children(doc, subject, ASSERTION, "SubjectConfirmation") {
        if attribute(doc, confirmation, "Method") != Some(BEARER) {
            continue;
        }
        let data = one(doc, confirmation, ASSERTION, "SubjectConfirmationData")?;
        if attribute(doc, data, "Recipient") != Some(expected.acs_url) {
            return Err("the assertion's Recipient is not this service provider's ACS URL".into());
        }
        check_in_response_to(attribute(doc, data, "InResponseTo"), expected)?;
        if let Some(before) = attribute(doc, data, "NotBefore")
            && seconds(before, "NotBefore")? > now + SKEW_SECS
        {
            return Err("the assertion is not valid yet".into());
        }
        let until = seconds(
            attribute(doc, data, "NotOnOrAfter").ok_or("the confirmation has no NotOnOrAfter")?,
            "NotOnOrAfter",
        )?;
        if until <= now - SKEW_SECS {
            return Err("the assertion has expired".into());
        }
        confirmed_until = Some(until);
    }
    let confirmed_until = confirmed_until.ok_or("the assertion confirms no bearer subject")?;
    // Its conditions: the validity window and this service provider as the audience.
    let conditions = one(doc, assertion, ASSERTION, "Conditions")?;
    if let Some(before) = attribute(doc, conditions, "NotBefore")
        && seconds(before, "NotBefore")? > now + SKEW_SECS
    {
        return Err("the assertion is not valid yet".into());
    }
    let until = seconds(
        attribute(doc, conditions, "NotOnOrAfter").ok_or("the conditions have no NotOnOrAfter")?,
        "NotOnOrAfter",
    )?;
    if until <= now - SKEW_SECS {
        return Err("the assertion has expired".into());
    }
    let restrictions: Vec<NodeId> =
        children(doc, conditions, ASSERTION, "AudienceRestriction").collect();
    if restrictions.is_empty() {
        return Err("the assertion names no audience".into());
    }
    for restriction in restrictions {
        let audiences = children(doc, restriction, ASSERTION, "Audience")
            .map(|a| text(doc, a, "Audience"))
            .collect::<Result<Vec<_>, _>>()?;
        if !audiences.iter().any(|a| a == expected.sp_entity_id) {
            return Err("the assertion is meant for another audience".into());
        }
    }
    // How the person signed in, and what the provider says of it.
    let mut methods = Vec::new();
    for statement in children(doc, assertion, ASSERTION, "AuthnStatement") {
        for context in children(doc, statement, ASSERTION, "AuthnContext") {
            for class in children(doc, context, ASSERTION, "AuthnContextClassRef") {
                methods.push(text(doc, class, "AuthnContextClassRef")?);
            }
        }
    }
    let values = |name: &str| -> Result<Vec<String>, String> {
        let mut found = Vec::new();
        for statement in children(doc, assertion, ASSERTION, "AttributeStatement") {
            for attr in children(doc, statement, ASSERTION, "Attribute") {
                if attribute(doc, attr, "Name") == Some(name) {
                    for value in children(doc, attr, ASSERTION, "AttributeValue") {
                        found.push(text(doc, value, "AttributeValue")?);
                    }
                }
            }
        }
        Ok(found)
    };
    let email = values(&expected.attributes.email)?.into_iter().next();
    let name = values(&expected.attributes.name)?.into_iter().next();
    let groups = values(&expected.attributes.groups)?;
    Ok(Verified {
        login: ExternalLogin {
            subject: name_id,
            email,
            // Whether the provider vouches for the email is the provider's setting.
            email_verified: false,
            name,
            groups,
            methods,
        },
        assertion_id: id,
        not_on_or_after: until.min(confirmed_until),
    })
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )]

    use super::*;

    const IDP: &str = include_str!("saml_fixtures/idp.pem");
    const OTHER: &str = include_str!("saml_fixtures/other.pem");
    const ASSERTION_SIGNED: &str = include_str!("saml_fixtures/resp-assertion-sp.xml");
    const TAMPERED: &str = include_str!("saml_fixtures/resp-assertion-sp-tampered.xml");
    const RESPONSE_SIGNED: &str = include_str!("saml_fixtures/resp-response-sp.xml");
    const BOTH_SIGNED: &str = include_str!("saml_fixtures/resp-both-sp.xml");
    const UNSIGNED: &str = include_str!("saml_fixtures/resp-none-sp.xml");
    const IDP_INITIATED: &str = include_str!("saml_fixtures/resp-assertion-idp.xml");

    fn claims() -> ClaimNames {
        ClaimNames {
            email: "email".into(),
            name: "name".into(),
            groups: "groups".into(),
        }
    }

    /// What pysaml2's responses (tests/idp/saml_idp.py, 2026-12-03 04:43 UTC) were made
    /// for, at a time inside their window.
    fn expected<'a>(xml: &'a str, claims: &'a ClaimNames) -> Expected<'a> {
        let in_response_to = xml
            .split("InResponseTo=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next());
        Expected {
            idp_entity_id: "https://127.0.0.1:38001/metadata",
            sp_entity_id: "https://127.0.0.1:8443/sso/idp_x/metadata",
            acs_url: "https://127.0.0.1:8443/sso/idp_x/acs",
            in_response_to,
            want_assertions_signed: false,
            attributes: claims,
            now: seconds("2026-12-03T04:46:00Z", "now").unwrap(),
        }
    }

    fn check(xml: &str, tune: impl FnOnce(&mut Expected<'_>)) -> Result<Verified, String> {
        let claims = claims();
        let mut expected = expected(xml, &claims);
        tune(&mut expected);
        verify(xml, &[IDP.to_owned()], &expected)
    }

    fn refused(xml: &str, why: &str) {
        let error = check(xml, |_| {}).expect_err("refused");
        assert!(error.contains(why), "{error}");
    }

    #[test]
    fn pysaml2_responses_signed_on_the_assertion_the_response_or_both_are_read() {
        for xml in [ASSERTION_SIGNED, RESPONSE_SIGNED, BOTH_SIGNED] {
            let verified = check(xml, |_| {}).unwrap();
            assert!(verified.login.subject.ends_with("@example.com"));
            assert_eq!(verified.login.email.as_deref(), Some("alice@example.com"));
            assert!(!verified.login.methods.is_empty());
            assert!(verified.assertion_id.starts_with("id-"));
        }
        let idp_initiated = check(IDP_INITIATED, |e| e.in_response_to = None).unwrap();
        assert!(!idp_initiated.login.subject.is_empty());
    }

    #[test]
    fn signatures_that_are_missing_altered_or_by_another_key_are_refused() {
        refused(UNSIGNED, "not signed");
        refused(TAMPERED, "does not verify");
        let claims = claims();
        let other = verify(
            ASSERTION_SIGNED,
            &[OTHER.to_owned()],
            &expected(ASSERTION_SIGNED, &claims),
        );
        assert!(other.is_err(), "{other:?}");
        // A provider that must sign its assertions: a response-only signature is short.
        let error = check(RESPONSE_SIGNED, |e| e.want_assertions_signed = true).unwrap_err();
        assert!(error.contains("assertion itself is not signed"), "{error}");
    }

    #[test]
    fn sha1_doctype_and_foreign_transforms_are_refused_before_any_signature_runs() {
        refused(
            &ASSERTION_SIGNED.replace("xmldsig-more#rsa-sha256", "xmldsig#rsa-sha1"),
            "refused",
        );
        refused(
            &ASSERTION_SIGNED.replace("xmlenc#sha256", "xmldsig#sha1"),
            "refused",
        );
        refused(
            &ASSERTION_SIGNED.replacen(
                "<?xml version=\"1.0\"?>",
                "<?xml version=\"1.0\"?><!DOCTYPE r [<!ENTITY x \"y\">]>",
                1,
            ),
            "DOCTYPE",
        );
        refused(
            &ASSERTION_SIGNED.replace(
                "http://www.w3.org/2000/09/xmldsig#enveloped-signature",
                "http://www.w3.org/TR/1999/REC-xslt-19991116",
            ),
            "transforms",
        );
    }

    #[test]
    fn wrapped_moved_or_duplicated_assertions_and_ids_are_refused() {
        let start = ASSERTION_SIGNED.find("<ns1:Assertion").unwrap();
        let end = ASSERTION_SIGNED.find("</ns1:Assertion>").unwrap() + "</ns1:Assertion>".len();
        let signed = &ASSERTION_SIGNED[start..end];
        // A forged assertion beside the signed one.
        let forged = signed.replace("alice-123@example.com", "mallory@example.com");
        let forged = forged.replacen("ID=\"id-", "ID=\"forged-", 1);
        let two = ASSERTION_SIGNED.replacen(signed, &format!("{forged}{signed}"), 1);
        refused(&two, "more than one assertion");
        // The signed one moved into Extensions, the forged one in its place.
        let moved = ASSERTION_SIGNED.replacen(
            signed,
            &format!("<ns0:Extensions>{signed}</ns0:Extensions>{forged}"),
            1,
        );
        refused(&moved, "more than one assertion");
        // Only the signed one, but moved under Extensions.
        let hidden = ASSERTION_SIGNED.replacen(
            signed,
            &format!("<ns0:Extensions>{signed}</ns0:Extensions>"),
            1,
        );
        refused(&hidden, "not where a Response holds it");
        // A second element with the assertion's ID.
        let id = signed
            .split("ID=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        let duplicate = ASSERTION_SIGNED.replacen(
            "<ns0:Status>",
            &format!("<ns0:Extensions><x ID=\"{id}\"/></ns0:Extensions><ns0:Status>"),
            1,
        );
        assert!(check(&duplicate, |_| {}).is_err());
    }

    #[test]
    fn a_comment_inside_the_name_id_does_not_cut_it_short() {
        let commented =
            ASSERTION_SIGNED.replacen("alice-123@example.com", "alice-123<!---->@example.com", 1);
        let verified = check(&commented, |_| {}).unwrap();
        assert_eq!(verified.login.subject, "alice-123@example.com");
    }

    #[test]
    fn audience_recipient_destination_request_and_time_are_checked() {
        let refuse = |tune: &dyn Fn(&mut Expected<'_>), why: &str| {
            let claims = claims();
            let mut expected = expected(ASSERTION_SIGNED, &claims);
            tune(&mut expected);
            let error = verify(ASSERTION_SIGNED, &[IDP.to_owned()], &expected).unwrap_err();
            assert!(error.contains(why), "{why}: {error}");
        };
        refuse(
            &|e| e.sp_entity_id = "https://other/metadata",
            "another audience",
        );
        refuse(&|e| e.acs_url = "https://other/acs", "Destination");
        refuse(&|e| e.idp_entity_id = "https://other/idp", "Issuer");
        refuse(
            &|e| e.in_response_to = Some("id-not-mine"),
            "does not answer",
        );
        refuse(&|e| e.in_response_to = None, "did not make");
        refuse(&|e| e.now += 3600, "expired");
        refuse(&|e| e.now -= 3600, "not valid yet");
        let error = check(IDP_INITIATED, |e| e.in_response_to = Some("id-mine")).unwrap_err();
        assert!(error.contains("does not answer"), "{error}");
    }
}
