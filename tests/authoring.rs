//! Policy authoring through the real binary: a manifest that routes nothing, a module no
//! manifest names and a manifest whose module is missing are refused at `policy check`,
//! at start and at reload; every start and reload, refused ones included, is in the
//! appliance trail that `audit verify` checks.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use serde_json::{Value, json};

use crate::api::{assert_error, operator, start_in, start_server_with};
use crate::support::{copy_builtins, drop_in};
use latchkey_policy_abi::Outcome;

/// A way a folder can hold a control that would never run: what it is, how to write it
/// into a folder, and what the refusal must say.
type NoOp = (&'static str, fn(&Path), &'static str);

/// The three of them.
fn silent_no_ops() -> [NoOp; 3] {
    [
        (
            "a misspelled action",
            |dir| {
                drop_in(
                    dir,
                    "remote",
                    Outcome::Deny,
                    "no",
                    "\"computers.remote_controll\"",
                );
            },
            "did you mean computers.remote_control?",
        ),
        (
            "an orphan module",
            |dir| {
                drop_in(dir, "stray", Outcome::Deny, "no", "\"*\"");
                std::fs::remove_file(dir.join("stray.toml")).unwrap();
            },
            "stray.wasm: no manifest names this module",
        ),
        (
            "a manifest for a missing module",
            |dir| {
                drop_in(dir, "ghost", Outcome::Deny, "no", "\"*\"");
                std::fs::remove_file(dir.join("ghost.wasm")).unwrap();
            },
            "names the module \"ghost.wasm\", which is not beside it",
        ),
    ]
}

/// Take back what [`silent_no_ops`] wrote.
fn clean(dir: &Path) {
    for name in ["remote", "stray", "ghost"] {
        for ext in ["toml", "wasm"] {
            let _ = std::fs::remove_file(dir.join(format!("{name}.{ext}")));
        }
    }
}

#[test]
fn a_control_that_would_never_run_is_refused_at_check_start_and_reload() {
    let policies = copy_builtins();
    let server = start_server_with(policies.path());
    let before = server.get(&server.admin_key, "/policies").body;
    let bot = server.post(&server.admin_key, "/bot_users", json!({"name": "ci"}));
    assert_eq!(bot.status, 201);

    for (what, write, says) in silent_no_ops() {
        write(policies.path());
        // Reload: refused, the set before stays and keeps deciding.
        let (code, refused) = operator(&server, "reload");
        assert_eq!(code, 1, "{what}: {refused}");
        let error = refused["error"].as_str().unwrap();
        assert!(error.contains(says), "{what}: {error}");
        let now = server.get(&server.admin_key, "/policies").body;
        assert_eq!(now, before, "{what}: the set stays");
        assert_eq!(server.get(&server.admin_key, "/bot_users").status, 200);

        // Check: given the manifest, or the module with its manifest beside it.
        for file in ["remote.toml", "remote.wasm", "ghost.toml"] {
            let path = policies.path().join(file);
            if !path.exists() {
                continue;
            }
            let out = Command::new(env!("CARGO_BIN_EXE_latchkey"))
                .args(["policy", "check"])
                .arg(&path)
                .output()
                .unwrap();
            assert_eq!(out.status.code(), Some(1), "{what}: {out:?}");
            let answer: Value = serde_json::from_slice(&out.stdout).unwrap();
            assert!(
                answer["error"].as_str().unwrap().contains(says),
                "{what}: {answer}"
            );
        }
        clean(policies.path());
    }
    // A valid custom module joins, and the trail holds the whole story, newest first.
    drop_in(
        policies.path(),
        "night-watch",
        Outcome::NotApplicable,
        "daytime",
        "\"computers.remote_control\"",
    );
    let (code, reloaded) = operator(&server, "reload");
    assert_eq!(code, 0, "{reloaded}");
    assert_eq!(reloaded["policies"].as_array().unwrap().len(), 3);

    let trail = server.get(&server.admin_key, "/policies/events");
    assert_eq!(trail.status, 200, "{:?}", trail.body);
    let events = trail.body["events"].as_array().unwrap();
    let actions: Vec<&str> = events
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "appliance.policies.reload",
            "appliance.policies.refuse",
            "appliance.policies.refuse",
            "appliance.policies.refuse",
            "appliance.policies.load",
        ]
    );
    let names = |state: &Value| -> Vec<String> {
        state["policies"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap().to_owned())
            .collect()
    };
    let (reload, refuse, load) = (&events[0], &events[1], &events[4]);
    assert_eq!(reload["trigger"], "operator");
    assert_eq!(names(&reload["before"]), ["account-rbac", "tenant-roles"]);
    assert_eq!(
        names(&reload["after"]),
        ["account-rbac", "tenant-roles", "night-watch"]
    );
    assert_eq!(reload["after"]["generation"], reloaded["generation"]);
    assert_eq!(
        reload["after"]["policies"][2]["sha256"],
        reloaded["policies"][2]["sha256"]
    );
    // Over the network a refusal says only that it was: its reason names host files.
    assert_eq!(refuse["after"]["refused"], true);
    assert_eq!(refuse["before"], refuse["after"].clone().tap_refused(false));
    assert_eq!(
        (load["trigger"].as_str(), &load["before"]),
        (Some("start"), &Value::Null)
    );
    assert_eq!(
        load["after"]["policies"],
        before["policies"].clone().digests()
    );
    // Paged like every list.
    let first = server.get(&server.admin_key, "/policies/events?limit=2");
    assert_eq!(first.body["events"].as_array().unwrap().len(), 2);
    let next = first.body["next_page_uri"].as_str().unwrap();
    let rest = server.get(&server.admin_key, &next[server.url.len()..]);
    assert_eq!(rest.body["events"][0]["id"], events[2]["id"]);

    // The operator's history gives each refusal's reason.
    let (code, history) = operator(&server, "history");
    assert_eq!(code, 0, "{history}");
    let reasons: Vec<&str> = history["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["after"]["refused"].as_str())
        .collect();
    assert_eq!(reasons.len(), 3, "{history}");
    assert!(reasons[2].contains("did you mean computers.remote_control?"));

    // Only administrators read it; an account's trail never shows the appliance's.
    let (_, developer) = server.member_with_key(
        "dev@example.com",
        json!({"developer": "read_write", "team": "manager"}),
    );
    assert_error(&server.get(&developer, "/policies/events"), 403, 101);
    let own = server.get(&server.admin_key, "/events?limit=100").body;
    assert!(
        own["events"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| !e["action"].as_str().unwrap().starts_with("appliance.")),
        "{own}"
    );
    let foreign = events[0]["id"].as_str().unwrap();
    assert_eq!(
        server
            .get(&server.admin_key, &format!("/events/{foreign}"))
            .status,
        404
    );

    // Start: each refused with the same words, nothing served; the trail verifies.
    let known = (
        server.admin_key.clone(),
        server.account_id.clone(),
        server.admin_id.clone(),
    );
    let dir = Arc::clone(&server.dir);
    let (status, _) = server.stop();
    assert!(status.success());
    let data = dir.path().join("data");
    for (what, write, says) in silent_no_ops() {
        write(policies.path());
        let out = Command::new(env!("CARGO_BIN_EXE_latchkey"))
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(&data)
            .arg("--policies")
            .arg(policies.path())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{what}: {out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(says), "{what}: {stderr}");
        clean(policies.path());
    }
    let verified = Command::new(env!("CARGO_BIN_EXE_latchkey"))
        .args(["audit", "verify", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(verified.status.success(), "{verified:?}");
    let checked = Command::new(env!("CARGO_BIN_EXE_latchkey"))
        .args(["check", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(checked.status.success(), "{checked:?}");

    // A restart records the set it starts with against the one recorded last: the
    // module taken out while the server was down shows as a change.
    std::fs::remove_file(policies.path().join("night-watch.toml")).unwrap();
    std::fs::remove_file(policies.path().join("night-watch.wasm")).unwrap();
    let again = start_in(dir, policies.path(), Some(known));
    let latest = &again.get(&again.admin_key, "/policies/events?limit=1").body["events"][0];
    assert_eq!(latest["action"], "appliance.policies.load");
    assert_eq!(
        names(&latest["before"]),
        ["account-rbac", "tenant-roles", "night-watch"]
    );
    assert_eq!(names(&latest["after"]), ["account-rbac", "tenant-roles"]);
}

/// Small helpers on JSON views of a set.
trait SetView {
    /// The same state with `refused` set to `refused`.
    fn tap_refused(self, refused: bool) -> Value;
    /// The `GET /policies` modules as the trail records them (name, kind, hash).
    fn digests(self) -> Value;
}

impl SetView for Value {
    fn tap_refused(mut self, refused: bool) -> Value {
        self["refused"] = refused.into();
        self
    }

    fn digests(self) -> Value {
        Value::Array(
            self.as_array()
                .unwrap()
                .iter()
                .map(|p| json!({"name": p["name"], "kind": p["kind"], "sha256": p["sha256"]}))
                .collect(),
        )
    }
}

/// RFC 3339 of now plus `seconds`.
fn from_now(seconds: i64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    let at = i64::try_from(now).unwrap() + seconds * 1000;
    latchkey::domain::time::Timestamp::from_millis(at).to_rfc3339()
}

#[test]
fn authorize_answers_what_if_questions_and_explains_the_request_it_built() {
    let policies = copy_builtins();
    let server = start_server_with(policies.path());
    let key = &server.admin_key;
    let made = server.post(
        key,
        "/api_keys",
        json!({"description": "expires in an hour", "expires_at": from_now(3600)}),
    );
    assert_eq!(made.status, 201, "{:?}", made.body);
    let token = made.body["token"].as_str().unwrap();
    let ask = |context: Value, explain: bool| {
        server.post(
            key,
            "/authorize",
            json!({
                "principal": {"token": token},
                "action": "iam.bot_users.list",
                "resource": {"type": "bot_user"},
                "context": context,
                "explain": explain,
            }),
        )
    };

    // Now, and in half an hour: allowed; in two hours the key has expired.
    let now = ask(json!({}), false);
    assert_eq!(now.body["decision"], "allow", "{:?}", now.body);
    assert!(now.body.get("time").is_none(), "{:?}", now.body);
    let soon = from_now(1800);
    let later = from_now(7200);
    let in_time = ask(json!({"time": soon}), false);
    assert_eq!(in_time.body["decision"], "allow", "{:?}", in_time.body);
    assert_eq!(in_time.body["time"], soon.as_str());
    let too_late = ask(json!({"time": later}), false);
    assert_eq!(
        (&too_late.body["decision"], &too_late.body["policy"]),
        (&json!("deny"), &json!("latchkey")),
        "{:?}",
        too_late.body
    );
    assert_eq!(too_late.body["time"], later.as_str());

    // Explained: every module's answer and the exact request they saw, which pastes
    // into a case file that `policy test` runs against the module.
    let explained = ask(json!({"time": soon, "ticket": "T-1"}), true);
    let request = &explained.body["request"];
    assert_eq!(
        request["action"], "iam.bot_users.list",
        "{:?}",
        explained.body
    );
    assert_eq!(request["principal"]["kind"], "User");
    assert_eq!(request["principal"]["credential"]["kind"], "ApiKey");
    let millis = latchkey::domain::time::Timestamp::parse_rfc3339("t", &soon)
        .unwrap()
        .as_millis();
    assert_eq!(request["context"]["time_ms"], millis);
    assert_eq!(request["context"]["values"], json!([["ticket", "T-1"]]));
    assert_eq!(explained.body["evaluated"][0]["policy"], "account-rbac");
    let cases = policies.path().join("pasted.cases.json");
    std::fs::write(
        &cases,
        json!([{"name": "pasted", "request": request, "expect": "allow"}]).to_string(),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_latchkey"))
        .args(["policy", "test"])
        .arg(policies.path().join("account-rbac.wasm"))
        .arg(&cases)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");

    // A time that is not one, and fields nobody reads, are refused rather than ignored.
    for (body, field) in [
        (
            json!({"principal": {"id": server.admin_id}, "action": "iam.account.get", "resource": {"type": "account"}, "context": {"time": "tomorrow"}}),
            "context.time",
        ),
        (
            json!({"principal": {"id": server.admin_id}, "action": "iam.account.get", "resource": {"type": "account"}, "context": {"time": 1_800_000_000}}),
            "context.time",
        ),
    ] {
        let refused = server.post(key, "/authorize", body);
        assert_error(&refused, 400, 105);
        assert_eq!(
            refused.body["details"]["field"], field,
            "{:?}",
            refused.body
        );
    }
    for body in [
        json!({"principal": {"id": server.admin_id}, "action": "", "resource": {"type": "account"}}),
        json!({"principal": {"id": server.admin_id}, "action": "a".repeat(256), "resource": {"type": "account"}}),
        json!({"principal": {"id": server.admin_id}, "action": "iam.account.get", "resource": {"type": "account"}, "when": "now"}),
        json!({"principal": {"id": server.admin_id, "roles": ["admin"]}, "action": "iam.account.get", "resource": {"type": "account"}}),
        json!({"principal": {"id": null, "token": "lk_ak_x"}, "action": "iam.account.get", "resource": {"type": "account"}}),
        json!({"principal": {"id": server.admin_id}, "action": "iam.account.get", "resource": {"type": "account", "tenant": "tnt_x"}}),
    ] {
        let refused = server.post(key, "/authorize", body);
        assert_eq!(refused.status, 400, "{:?}", refused.body);
    }
}

#[test]
fn policy_test_runs_fixture_cases_against_a_whole_folder_and_reports_coverage() {
    let policies = copy_builtins();
    drop_in(
        policies.path(),
        "freeze",
        Outcome::Deny,
        "change freeze until Monday",
        "\"computers.remote_control\"",
    );
    let cases = policies.path().join("set.cases.json");
    let write = |extra: &str| {
        let text = format!(
            r#"{{
              "tenants": ["contoso", "fabrikam"],
              "catalog": ["tickets.close"],
              "roles": {{"Helpdesk": ["computers.view", "tickets.close"]}},
              "principals": {{
                "tess": {{"assignments": [{{"role": "Technician", "tenant": "contoso"}}]}},
                "hal": {{"assignments": [{{"role": "Helpdesk", "tenant": "contoso"}}]}},
                "ada": {{"roles": {{"admin": true}}}}
              }},
              "cases": [
                {{"name": "a technician views its tenant's computers", "principal": "tess",
                  "action": "computers.view", "resource": {{"type": "computer", "id": "c-1", "tenant_id": "contoso"}},
                  "expect": "allow", "policy": "tenant-roles"}},
                {{"name": "not another tenant's", "principal": {{"id": "tess"}},
                  "action": "computers.view", "resource": {{"type": "computer", "tenant_id": "fabrikam"}},
                  "expect": "deny", "policy": "tenant-roles"}},
                {{"name": "the freeze narrows what the built-in allows", "principal": "tess",
                  "action": "computers.remote_control", "resource": {{"type": "computer", "tenant_id": "contoso"}},
                  "expect": "deny", "policy": "freeze", "reason": "change freeze"}},
                {{"name": "an added permission through a custom role", "principal": "hal",
                  "action": "tickets.close", "resource": {{"type": "ticket", "tenant_id": "contoso"}},
                  "expect": "allow"}},
                {{"name": "an administrator lists bots", "principal": "ada",
                  "action": "iam.bot_users.list", "resource": {{"type": "bot_user"}},
                  "expect": "allow", "policy": "account-rbac"}}{extra}
              ]
            }}"#
        );
        std::fs::write(&cases, text).unwrap();
    };
    let test = || {
        Command::new(env!("CARGO_BIN_EXE_latchkey"))
            .args(["policy", "test"])
            .arg(policies.path())
            .arg(&cases)
            .output()
            .unwrap()
    };
    write("");
    let out = test();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["passed"], 5, "{report}");
    let coverage = |policy: &str| {
        report["coverage"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["policy"] == policy)
            .cloned()
            .unwrap()
    };
    assert_eq!(
        coverage("freeze"),
        json!({"policy": "freeze", "actions": ["computers.remote_control"], "allow": 0, "deny": 1, "not_applicable": 0})
    );
    assert_eq!(
        coverage("tenant-roles")["actions"],
        json!([
            "computers.remote_control",
            "computers.view",
            "tickets.close"
        ])
    );
    assert_eq!(
        (
            coverage("tenant-roles")["allow"].as_u64(),
            coverage("tenant-roles")["deny"].as_u64()
        ),
        (Some(3), Some(1))
    );
    assert_eq!(
        coverage("account-rbac")["actions"],
        json!(["iam.bot_users.list"])
    );
    let table = String::from_utf8_lossy(&out.stderr);
    assert!(table.contains("5 passed, 0 failed"), "{table}");
    assert!(table.contains("freeze"), "{table}");

    // A wrong expectation fails with the set's answer, naming who decided and why.
    write(
        r#",
        {"name": "wrongly expected", "principal": "tess", "action": "computers.remote_control",
         "resource": {"type": "computer", "tenant_id": "contoso"}, "expect": "allow"},
        {"name": "wrong policy", "principal": "tess", "action": "computers.view",
         "resource": {"type": "computer", "tenant_id": "contoso"}, "expect": "allow", "policy": "freeze"},
        {"name": "a set never abstains", "principal": "tess", "action": "computers.view",
         "resource": {"type": "computer", "tenant_id": "contoso"}, "expect": "not_applicable"}"#,
    );
    let out = test();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let failures: Vec<&str> = report["failures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["reason"].as_str().unwrap())
        .collect();
    assert_eq!(failures.len(), 3, "{report}");
    assert!(
        failures[0].starts_with("expected allow, got deny from freeze: change freeze"),
        "{failures:?}"
    );
    assert!(
        failures[1].contains("by freeze, but tenant-roles decided"),
        "{failures:?}"
    );
    assert!(failures[2].contains("never not_applicable"), "{failures:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("FAIL"));

    // A case naming a fixture that is not there could not run: exit 2, naming it.
    std::fs::write(
        &cases,
        r#"{"cases": [{"name": "n", "principal": "ghost", "action": "computers.view", "resource": {"type": "computer"}, "expect": "deny"}]}"#,
    )
    .unwrap();
    let out = test();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no principal fixture is named \"ghost\"")
    );
}
