// latchkey dashboard: progressive enhancement only; every page works without it.
// A copy button (hidden until this runs) copies the field it names.
for (const button of document.querySelectorAll("button[data-copy]")) {
  const field = document.getElementById(button.dataset.copy);
  if (!field || !navigator.clipboard) continue;
  button.hidden = false;
  button.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(field.value);
      button.textContent = "Copied";
    } catch {
      field.select();
    }
  });
}

// The steps to and from an identity provider: an a[data-autofollow] is followed and a
// form[data-autosubmit] posts itself at once; without the script, the member does.
const away = document.querySelector("a[data-autofollow]");
if (away) window.location.assign(away.href);
document.querySelector("form[data-autosubmit]")?.submit();

// Passkeys: a form[data-passkey] (hidden until now) asks its data-options URL for a
// ceremony, has the browser make ("create") or use ("get") a passkey, and posts the
// answer in its hidden fields. WebAuthn needs a host name: on an IP address the form
// stays hidden and the page's note says why.
const base64url = {
  decode(text) {
    const padded = text.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((text.length + 3) % 4);
    return Uint8Array.from(atob(padded), (c) => c.charCodeAt(0)).buffer;
  },
  encode(buffer) {
    let text = "";
    for (const byte of new Uint8Array(buffer)) text += String.fromCharCode(byte);
    return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  },
};

function creationOptions(options) {
  const publicKey = options.publicKey;
  publicKey.challenge = base64url.decode(publicKey.challenge);
  publicKey.user.id = base64url.decode(publicKey.user.id);
  for (const credential of publicKey.excludeCredentials || []) {
    credential.id = base64url.decode(credential.id);
  }
  return { publicKey };
}

function requestOptions(options) {
  const publicKey = options.publicKey;
  publicKey.challenge = base64url.decode(publicKey.challenge);
  for (const credential of publicKey.allowCredentials || []) {
    credential.id = base64url.decode(credential.id);
  }
  return { publicKey };
}

function credentialJson(credential) {
  const answer = credential.response;
  const response = { clientDataJSON: base64url.encode(answer.clientDataJSON) };
  for (const field of ["attestationObject", "authenticatorData", "signature", "userHandle"]) {
    if (answer[field]) response[field] = base64url.encode(answer[field]);
  }
  return JSON.stringify({
    id: credential.id,
    rawId: base64url.encode(credential.rawId),
    type: credential.type,
    response,
    clientExtensionResults: credential.getClientExtensionResults(),
  });
}

const hostName = !/^[0-9.]+$/.test(location.hostname) && !location.hostname.startsWith("[");
if (window.PublicKeyCredential && window.isSecureContext && hostName) {
  for (const note of document.querySelectorAll("[data-passkey-unavailable]")) note.hidden = true;
  for (const form of document.querySelectorAll("form[data-passkey]")) {
    form.hidden = false;
    const error = form.querySelector("[data-passkey-error]");
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      error.hidden = true;
      try {
        const asked = await fetch(form.dataset.options, {
          method: "POST",
          credentials: "same-origin",
          body: new URLSearchParams({ csrf: form.elements.csrf.value }),
        });
        const ceremony = await asked.json();
        if (!asked.ok) throw new Error(ceremony.error || "The passkey request was refused.");
        const credential =
          form.dataset.passkey === "create"
            ? await navigator.credentials.create(creationOptions(ceremony.options))
            : await navigator.credentials.get(requestOptions(ceremony.options));
        form.elements.ceremony.value = ceremony.ceremony;
        form.elements.credential.value = credentialJson(credential);
        form.submit();
      } catch (failure) {
        error.textContent =
          failure.name === "NotAllowedError"
            ? "The passkey request was cancelled or timed out."
            : failure.message || String(failure);
        error.hidden = false;
      }
    });
  }
}
