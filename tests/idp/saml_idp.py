#!/usr/bin/env python3
# A real SAML 2.0 identity provider on loopback for tests/sso.rs: pysaml2's IdP (saml2.server),
# signing through Debian's xmlsec1 (on PATH), over HTTPS with the certificate the test made.
# It takes HTTP-Redirect AuthnRequests at /sso/redirect and answers with an auto-submitting
# HTTP-POST form to the SP's ACS, signing in at once the person the test named last (POST
# /_test/user {"name_id", "email", "name", "groups", "authn_context"?, "name_id_format"?}; the
# NameID is emailAddress when name_id holds an @, else persistent). It makes its own
# signing key and self-signed certificate at start, and signs with RSA-SHA256 / SHA-256 the
# assertion (default), the response, both or neither (POST /_test/mode {"sign"}).
# GET /idp-initiated?RelayState= posts an unsolicited response (no InResponseTo); POST
# /_test/last gives the last SAMLResponse (base64) for tampering; GET /metadata its metadata.
#
# Protocol with the test: LATCHKEY_IDP={"cert", "key"} (TLS); it prints `{"port": N,
# "entity_id", "sso_url", "certificate"}` (the signing certificate, PEM) once listening, reads
# one line of JSON `{"sp_entity_id", "acs_url"}` from stdin (the SP, whose metadata it builds
# from these: HTTP-POST ACS, unsigned requests), then prints `{"ready": true}`. It ends when
# its stdin closes. It logs to stderr only.

import atexit
import base64
import datetime
import json
import os
import shutil
import ssl
import sys
import tempfile
import threading
import traceback
import warnings
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse
from xml.sax.saxutils import quoteattr

# pysaml2 7.5.5 still names cryptography's CFB mode where recent releases warn about it.
warnings.filterwarnings("ignore", message="CFB has been moved")

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT
from saml2.attribute_converter import AttributeConverter
from saml2.config import IdPConfig
from saml2.metadata import entity_descriptor
from saml2.saml import NAME_FORMAT_BASIC, NAMEID_FORMAT_EMAILADDRESS, NAMEID_FORMAT_PERSISTENT, NameID
from saml2.server import Server
from saml2.xmldsig import DIGEST_SHA256, SIG_RSA_SHA256

PASSWORD_PROTECTED = "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"
SIGN_MODES = ("assertion", "response", "both", "none")

state = {
    "person": {"name_id": "alice@example.com", "email": "alice@example.com", "name": "Alice", "groups": []},
    "sign": "assertion",
    "last": None,
}
lock = threading.Lock()  # pysaml2's Server and the state above, one request at a time


def emit(message):
    print(json.dumps(message), flush=True)


def make_signing_pair(directory):
    """A fresh RSA-2048 key and self-signed certificate for signing, as PEM files."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "latchkey test SAML IdP")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=365))
        .sign(key, hashes.SHA256())
    )
    key_path, cert_path = os.path.join(directory, "saml.key"), os.path.join(directory, "saml.crt")
    with open(key_path, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                  serialization.NoEncryption()))
    cert_pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    with open(cert_path, "w") as f:
        f.write(cert_pem)
    return key_path, cert_path, cert_pem


def make_idp(base, key_path, cert_path, sp_entity_id, acs_url):
    sp_metadata = f"""<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID={quoteattr(sp_entity_id)}>
  <md:SPSSODescriptor AuthnRequestsSigned="false" protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">
    <md:AssertionConsumerService index="0" Binding="{BINDING_HTTP_POST}" Location={quoteattr(acs_url)}/>
  </md:SPSSODescriptor>
</md:EntityDescriptor>"""
    config = IdPConfig()
    config.load({
        "entityid": f"{base}/metadata",
        "key_file": key_path,
        "cert_file": cert_path,
        "metadata": {"inline": [sp_metadata]},
        "signing_algorithm": SIG_RSA_SHA256,
        "digest_algorithm": DIGEST_SHA256,
        "service": {"idp": {
            "endpoints": {"single_sign_on_service": [(f"{base}/sso/redirect", BINDING_HTTP_REDIRECT)]},
            "want_authn_requests_signed": False,
            "name_id_format": [NAMEID_FORMAT_EMAILADDRESS, NAMEID_FORMAT_PERSISTENT],
            "policy": {"default": {
                "lifetime": {"minutes": 5}, "attribute_restrictions": None, "name_form": NAME_FORMAT_BASIC,
            }},
        }},
    })
    # Attributes go out under their own names (email, name, groups), NameFormat basic, instead
    # of pysaml2's default maps (urn:mace:dir:attribute-def:email, urn:oid:…).
    plain = AttributeConverter(NAME_FORMAT_BASIC)
    plain.from_dict({"identifier": NAME_FORMAT_BASIC, "to": {k: k for k in ("email", "name", "groups")}})
    config.attribute_converters = [plain]
    return Server(config=config)


def post_form(in_response_to, destination, sp_entity_id, relay_state):
    """The signed (as the mode says) Response for the current person, as an auto-submit page."""
    person, sign = state["person"], state["sign"]
    name_id = person["name_id"]
    name_id_format = person.get("name_id_format") or (
        NAMEID_FORMAT_EMAILADDRESS if "@" in name_id else NAMEID_FORMAT_PERSISTENT)
    identity = {k: v if isinstance(v, list) else [v]
                for k, v in {"email": person.get("email"), "name": person.get("name"),
                             "groups": person.get("groups") or []}.items() if v}
    response = idp.create_authn_response(
        identity, in_response_to, destination, sp_entity_id,
        name_id=NameID(format=name_id_format, text=name_id),
        authn={"class_ref": person.get("authn_context") or PASSWORD_PROTECTED},
        sign_assertion=sign in ("assertion", "both"),
        sign_response=sign in ("response", "both"),
        sign_alg=SIG_RSA_SHA256, digest_alg=DIGEST_SHA256,
    )
    xml = str(response)
    state["last"] = base64.b64encode(xml.encode()).decode()
    http = idp.apply_binding(BINDING_HTTP_POST, xml, destination, relay_state or "", response=True)
    return http["data"]


class Handler(BaseHTTPRequestHandler):
    def reply(self, status, body, content_type="application/json"):
        data = (json.dumps(body) if content_type == "application/json" else body).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        url = urlparse(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        try:
            with lock:
                if url.path == "/sso/redirect":
                    request = idp.parse_authn_request(query["SAMLRequest"], BINDING_HTTP_REDIRECT)
                    if request is None:
                        raise ValueError("AuthnRequest refused")
                    args = idp.response_args(request.message, [BINDING_HTTP_POST])
                    page = post_form(args["in_response_to"], args["destination"], args["sp_entity_id"],
                                     query.get("RelayState"))
                elif url.path == "/idp-initiated":
                    page = post_form(None, sp["acs_url"], sp["sp_entity_id"], query.get("RelayState"))
                elif url.path == "/metadata":
                    return self.reply(200, str(entity_descriptor(idp.config)), "application/samlmetadata+xml")
                else:
                    return self.reply(404, {"error": "not found"})
        except Exception as error:
            traceback.print_exc(file=sys.stderr)
            return self.reply(400, f"SAML request refused: {error}\n", "text/plain")
        self.reply(200, page, "text/html; charset=utf-8")

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            message = json.loads(body or b"{}")
        except ValueError:
            return self.reply(400, {"error": "body is not JSON"})
        with lock:
            if self.path == "/_test/user":
                state["person"] = message
            elif self.path == "/_test/mode" and message.get("sign") in SIGN_MODES:
                state["sign"] = message["sign"]
            elif self.path == "/_test/mode":
                return self.reply(400, {"error": f"sign must be one of {SIGN_MODES}"})
            elif self.path == "/_test/last":
                return self.reply(200, {"saml_response": state["last"]})
            else:
                return self.reply(404, {"error": "not found"})
        self.reply(200, {"ok": True})

    def log_message(self, format, *args):
        sys.stderr.write(f"saml_idp: {self.address_string()} {format % args}\n")


tls = json.loads(os.environ.get("LATCHKEY_IDP") or "{}")
workdir = tempfile.mkdtemp(prefix="latchkey-saml-idp-")
atexit.register(shutil.rmtree, workdir, True)
key_path, cert_path, cert_pem = make_signing_pair(workdir)

server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(tls["cert"], tls["key"])
# The handshake happens in each request's thread, so one stalled client holds up no other.
server.socket = context.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
port = server.server_address[1]
base = f"https://127.0.0.1:{port}"
emit({"port": port, "entity_id": f"{base}/metadata", "sso_url": f"{base}/sso/redirect", "certificate": cert_pem})

line = sys.stdin.readline()
if not line:
    sys.exit(0)
sp = json.loads(line)
idp = make_idp(base, key_path, cert_path, sp["sp_entity_id"], sp["acs_url"])
threading.Thread(target=server.serve_forever, daemon=True).start()
emit({"ready": True})

# Ends with the test: its stdin closes.
for _ in sys.stdin:
    pass
server.shutdown()
