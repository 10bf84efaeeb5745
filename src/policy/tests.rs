//! Policy host tests: hostile guests, routing and combination, reload, offline tools.
//!
//! Guests are WAT (hostile ones in `fixtures/`, fixed-answer ones generated here), written
//! with a manifest into a temporary policies folder, as an operator would.

use std::path::{Path, PathBuf};
use std::time::Instant;

use latchkey_policy_abi::{
    AccountRoles, Billing, Context, Developer, IpAddress, Mfa, Principal, PrincipalKind, Resource,
    Team,
};

use super::*;

const GOOD: &str = include_str!("fixtures/good.wat");
const COUNTER: &str = include_str!("fixtures/counter.wat");
const FLAKY: &str = include_str!("fixtures/flaky.wat");

fn fixture(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("src/policy/fixtures")
        .join(format!("{name}.wat"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

// `fixed(outcome, reason)`: shared with the integration tests in `tests/policies.rs`.
include!("fixtures/fixed.rs");

fn request(action: &str) -> Request {
    Request {
        principal: Principal {
            kind: PrincipalKind::User,
            id: "usr_1".into(),
            account: "ac_1".into(),
            roles: Some(AccountRoles {
                developer: Developer::ReadWrite,
                team: Team::ReadOnly,
                billing: Billing::None,
                admin: false,
            }),
            assignments: Vec::new(),
            mfa: Mfa::default(),
            credential: None,
            source_ip: Some(IpAddress::V4([127, 0, 0, 1])),
        },
        action: action.into(),
        resource: Resource {
            kind: "api_key".into(),
            id: "ak_1".into(),
            account: "ac_1".into(),
            tenant: None,
            owner: Some("usr_1".into()),
            permission: None,
            attributes: Vec::new(),
        },
        context: Context {
            time_ms: 1_700_000_000_000,
            values: Vec::new(),
        },
    }
}

/// A temporary policies folder.
struct Folder {
    dir: tempfile::TempDir,
}

impl Folder {
    fn new() -> Folder {
        Folder {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Write `name.toml` and `name.wasm`; `extra` is appended to the manifest. A pattern
    /// outside latchkey's own actions (`acme.*`) has its namespace declared.
    fn add(&self, name: &str, kind: &str, actions: &[&str], extra: &str, wat: &str) {
        let own = crate::domain::action::known_actions()
            .filter_map(|a| a.split('.').next().map(str::to_owned))
            .collect::<std::collections::BTreeSet<_>>();
        let namespaces: Vec<&str> = actions
            .iter()
            .filter_map(|a| a.split('.').next())
            .filter(|first| *first != "*" && !own.contains(*first))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        let manifest = format!(
            "name = \"{name}\"\nmodule = \"{name}.wasm\"\nkind = \"{kind}\"\nactions = {actions:?}\nnamespaces = {namespaces:?}\n{extra}\n"
        );
        std::fs::write(self.path().join(format!("{name}.toml")), manifest).unwrap();
        self.put_wasm(name, wat);
    }

    fn put_wasm(&self, name: &str, wat: &str) {
        let wasm = wat::parse_str(wat).unwrap();
        std::fs::write(self.wasm_path(name), wasm).unwrap();
    }

    fn wasm_path(&self, name: &str) -> PathBuf {
        self.path().join(format!("{name}.wasm"))
    }

    fn engine(&self, limits: Limits) -> PolicyEngine {
        PolicyEngine::load(self.path(), limits, &[]).unwrap()
    }

    fn load_error(&self) -> String {
        PolicyEngine::load(self.path(), Limits::default(), &[])
            .unwrap_err()
            .to_string()
    }
}

fn reasons(engine: &PolicyEngine, action: &str, n: usize) -> Vec<String> {
    (0..n)
        .map(|_| engine.decide(&request(action)).reason)
        .collect()
}

// ---- the good module ----------------------------------------------------------------

#[test]
fn a_good_module_allows_with_its_reason() {
    let folder = Folder::new();
    folder.add("good", "builtin", &["good.*"], "", GOOD);
    let verdict = folder
        .engine(Limits::default())
        .explain(&request("good.read"));
    assert_eq!(
        verdict,
        Verdict {
            allowed: true,
            policy: "good".into(),
            reason: "ok".into(),
            evaluated: vec![Evaluated {
                policy: "good".into(),
                outcome: Outcome::Allow,
                reason: "ok".into(),
            }],
            request: None,
        }
    );
}

// ---- hostile guests at decision time --------------------------------------------------

/// Load `fixture` as the only module of `bad.*`, next to a good module on `good.*`; a
/// `bad.*` decision must deny with a reason starting with `expected`, twice (a fresh
/// instance faults the same way), and a good decision must still be allowed after each.
fn check_contained(fixture_name: &str, expected: &str) {
    let folder = Folder::new();
    folder.add("good", "builtin", &["good.*"], "", GOOD);
    folder.add(
        fixture_name,
        "builtin",
        &["bad.*"],
        "",
        &fixture(fixture_name),
    );
    let engine = folder.engine(Limits::default());
    for _ in 0..2 {
        let verdict = engine.decide(&request("bad.thing"));
        assert!(!verdict.allowed, "{fixture_name} must be denied");
        assert_eq!(verdict.policy, fixture_name);
        assert!(
            verdict.reason.starts_with(expected),
            "{fixture_name}: reason {:?} should start with {expected:?}",
            verdict.reason
        );
        let after = engine.decide(&request("good.thing"));
        assert!(after.allowed, "after {fixture_name}: {after:?}");
        assert_eq!(after.reason, "ok");
    }
}

#[test]
fn hostile_guests_are_contained_and_denied_with_their_fault() {
    for (fixture, expected) in [
        ("loop", "loop: ran out of fuel (10000000)"),
        ("grow", "grow: exceeded its memory limit (16 MiB)"),
        (
            "trap",
            "trap: trapped (wasm `unreachable` instruction executed)",
        ),
        ("stack", "stack: trapped (call stack exhausted)"),
        (
            "oob",
            "oob: gave a decision outside its memory (4294901760+16, memory is 65536 bytes)",
        ),
        (
            "request_oob",
            "request_oob: gave a request buffer outside its memory (4294967040+",
        ),
        (
            "garbage",
            "garbage: returned a decision that does not decode (",
        ),
        (
            "huge",
            "huge: returned a decision of 1000000 bytes (at most 4096 are read)",
        ),
        ("alloc_zero", "alloc_zero: could not allocate "),
        (
            "alloc_grow",
            "alloc_grow: exceeded its memory limit (16 MiB)",
        ),
    ] {
        check_contained(fixture, expected);
    }
}

#[test]
fn a_manifest_can_lower_fuel_but_not_raise_it() {
    let folder = Folder::new();
    folder.add(
        "low",
        "custom",
        &["low.*"],
        "[limits]\nfuel = 1000",
        &fixture("loop"),
    );
    folder.add(
        "high",
        "custom",
        &["high.*"],
        "[limits]\nfuel = 99999999999\nmemory_pages = 100000",
        &fixture("loop"),
    );
    let engine = folder.engine(Limits {
        fuel: 50_000,
        ..Limits::default()
    });
    assert_eq!(
        engine.decide(&request("low.x")).reason,
        "low: ran out of fuel (1000)"
    );
    assert_eq!(
        engine.decide(&request("high.x")).reason,
        "high: ran out of fuel (50000)"
    );
    let set = engine.current();
    let high = set.policies().iter().find(|p| p.name() == "high").unwrap();
    assert_eq!(high.limits().memory_bytes, 16 * 1024 * 1024);
}

#[test]
fn narrowed_limits_take_the_lower_of_host_and_manifest() {
    let host = Limits::default();
    let lowered = host.narrowed_by(&ManifestLimits {
        fuel: Some(5),
        memory_pages: Some(2),
    });
    assert_eq!((lowered.fuel, lowered.memory_bytes), (5, 128 * 1024));
    assert_eq!(host.narrowed_by(&ManifestLimits::default()), host);
    let raised = host.narrowed_by(&ManifestLimits {
        fuel: Some(u64::MAX),
        memory_pages: Some(u32::MAX),
    });
    assert_eq!(raised, host);
}

// ---- hostile guests at load time ----------------------------------------------------

#[test]
fn invalid_modules_are_refused_at_load_with_the_reason() {
    for (fixture_name, expected) in [
        ("abi99", "abi99: speaks ABI v99, this host speaks v1"),
        (
            "wasi",
            "wasi: imports wasi_snapshot_preview1.fd_write, which the sandbox does not provide",
        ),
        ("no_reset", "no_reset: does not export lk_reset"),
        (
            "bad_signature",
            "bad_signature: exports lk_evaluate as (i32) -> (i32), expected (i32, i32) -> (i64)",
        ),
        ("start_loop", "start_loop: ran out of fuel (10000000)"),
        (
            "big_memory",
            "big_memory: exceeded its memory limit (16 MiB)",
        ),
    ] {
        let folder = Folder::new();
        folder.add("good", "builtin", &["*"], "", GOOD);
        folder.add(fixture_name, "custom", &["*"], "", &fixture(fixture_name));
        assert_eq!(folder.load_error(), expected, "{fixture_name}");
    }
}

#[test]
fn bytes_that_are_not_wasm_are_refused() {
    let folder = Folder::new();
    folder.add("good", "builtin", &["*"], "", GOOD);
    std::fs::write(folder.wasm_path("good"), b"\0asm but not really").unwrap();
    let error = folder.load_error();
    assert!(
        error.starts_with("good: is not a valid WASM module: "),
        "{error}"
    );
}

#[test]
fn a_missing_module_file_is_refused_naming_the_file() {
    let folder = Folder::new();
    folder.add("good", "builtin", &["*"], "", GOOD);
    std::fs::remove_file(folder.wasm_path("good")).unwrap();
    let error = folder.load_error();
    assert!(error.contains("good.wasm"), "{error}");
}

#[test]
fn malformed_manifests_are_refused() {
    for (extra, expected) in [
        ("colour = \"blue\"", "unknown field `colour`"),
        ("exclude = [\"iam*\"]", "invalid action pattern \"iam*\""),
        ("isolation = \"sometimes\"", "unknown variant `sometimes`"),
        ("[limits]\nseconds = 3", "unknown field `seconds`"),
    ] {
        let folder = Folder::new();
        folder.add("good", "builtin", &["iam.*"], extra, GOOD);
        let error = folder.load_error();
        assert!(error.contains(expected), "{extra}: {error}");
    }
    let path = Path::new("x.toml");
    for (text, expected) in [
        (
            "name = \"a\"\nmodule = \"../a.wasm\"\nkind = \"custom\"\nactions = [\"*\"]",
            "must be a file name",
        ),
        (
            "name = \"a b\"\nmodule = \"a.wasm\"\nkind = \"custom\"\nactions = [\"*\"]",
            "invalid policy name",
        ),
        (
            "name = \"a\"\nmodule = \"a.wasm\"\nkind = \"custom\"\nactions = []",
            "actions is empty",
        ),
        (
            "name = \"a\"\nmodule = \"a.wasm\"\nkind = \"root\"\nactions = [\"*\"]",
            "unknown variant `root`",
        ),
    ] {
        let error = Manifest::from_toml(text, path).unwrap_err().to_string();
        assert!(error.contains(expected), "{error}");
    }
}

#[test]
fn two_manifests_with_one_name_are_refused() {
    let folder = Folder::new();
    folder.add("good", "builtin", &["*"], "", GOOD);
    std::fs::write(
        folder.path().join("again.toml"),
        "name = \"good\"\nmodule = \"good.wasm\"\nkind = \"custom\"\nactions = [\"*\"]\n",
    )
    .unwrap();
    assert_eq!(folder.load_error(), "two manifests name the policy good");
}

// ---- instance reuse -----------------------------------------------------------------

#[test]
fn reused_instances_keep_state_until_recycled() {
    let folder = Folder::new();
    folder.add("counter", "custom", &["*"], "", COUNTER);
    let engine = folder.engine(Limits {
        max_calls_per_instance: 3,
        ..Limits::default()
    });
    assert_eq!(
        reasons(&engine, "x.y", 7),
        ["1", "2", "3", "1", "2", "3", "1"]
    );
}

#[test]
fn per_decision_isolation_sees_a_fresh_instance_every_time() {
    let folder = Folder::new();
    folder.add(
        "counter",
        "custom",
        &["*"],
        "isolation = \"per-decision\"",
        COUNTER,
    );
    let engine = folder.engine(Limits::default());
    assert_eq!(reasons(&engine, "x.y", 4), ["1", "1", "1", "1"]);
}

#[test]
fn an_instance_that_faulted_is_never_reused() {
    let folder = Folder::new();
    folder.add("flaky", "custom", &["*"], "", FLAKY);
    let engine = folder.engine(Limits::default());
    let trapped = "flaky: trapped (wasm `unreachable` instruction executed)";
    assert_eq!(reasons(&engine, "x.y", 4), ["1", trapped, "1", trapped]);
}

#[test]
fn concurrent_decisions_each_get_an_instance() {
    let folder = Folder::new();
    folder.add("good", "builtin", &["*"], "", GOOD);
    let engine = folder.engine(Limits::default());
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for _ in 0..200 {
                    assert!(engine.decide(&request("a.b")).allowed);
                }
            });
        }
    });
}

// ---- remembered verdicts ------------------------------------------------------------

#[test]
fn a_timeless_verdict_is_remembered_for_exactly_its_request() {
    let folder = Folder::new();
    folder.add("counter", "custom", &["*"], "reads_clock = false", COUNTER);
    let engine = folder.engine(Limits::default());
    // The module ran once; the same request gets its verdict since, at any time.
    assert_eq!(reasons(&engine, "x.y", 3), ["1", "1", "1"]);
    let mut later = request("x.y");
    later.context.time_ms += 7 * 24 * 3_600_000;
    assert_eq!(engine.decide(&later).reason, "1");
    // The same request given in parts is the same question.
    let whole = request("x.y");
    let principal = encode_principal(&whole.principal).unwrap();
    let parts = |explain| {
        engine
            .decide_parts(&principal, "x.y", &whole.resource, &whole.context, explain)
            .reason
    };
    assert_eq!(parts(false), "1");
    // Any other part of the request is another question.
    let mut resource = request("x.y");
    resource.resource.id = "ak_2".into();
    let mut roles = request("x.y");
    roles.principal.roles = None;
    let mut value = request("x.y");
    value.context.values.push(("ticket".into(), "42".into()));
    let mut ip = request("x.y");
    ip.principal.source_ip = Some(IpAddress::V4([127, 0, 0, 2]));
    let asked: Vec<String> = [resource, roles, value, ip, request("x.z")]
        .iter()
        .map(|r| engine.decide(r).reason)
        .collect();
    assert_eq!(asked, ["2", "3", "4", "5", "6"]);
    // An explained decision asks the modules (its answer lists each).
    assert_eq!(parts(true), "7");
    assert_eq!(engine.explain(&request("x.y")).reason, "8");
    assert_eq!(engine.current().memo.len(), 6);
    // A reload is another set, which remembers nothing yet.
    engine.reload().unwrap();
    assert_eq!(engine.current().memo.len(), 0);
}

#[test]
fn a_module_that_reads_the_clock_decides_every_request() {
    let folder = Folder::new();
    folder.add("counter", "custom", &["*"], "", COUNTER);
    folder.add("timeless", "custom", &["x.*"], "reads_clock = false", GOOD);
    let engine = folder.engine(Limits::default());
    // Routed alone, or with a timeless module: either way, asked every time.
    assert_eq!(reasons(&engine, "a.b", 3), ["1", "2", "3"]);
    assert_eq!(engine.decide(&request("x.y")).reason, "4");
    assert_eq!(engine.decide(&request("x.y")).reason, "5");
    assert_eq!(engine.current().memo.len(), 0);
}

#[test]
fn a_fault_is_never_remembered() {
    let folder = Folder::new();
    folder.add("flaky", "custom", &["*"], "reads_clock = false", FLAKY);
    let engine = folder.engine(Limits::default());
    assert_eq!(reasons(&engine, "x.y", 2), ["1", "1"]);
    // The instance's second decision traps: a deny, asked again next time, when a fresh
    // instance answers (and that answer is remembered).
    let trapped = "flaky: trapped (wasm `unreachable` instruction executed)";
    assert_eq!(reasons(&engine, "x.z", 3), [trapped, "1", "1"]);
    assert_eq!(engine.current().policies()[0].faults(), 1);
}

// ---- routing and combination --------------------------------------------------------

/// Decide `action` with one fixed-answer module per entry: (name, kind, actions, answer).
fn combine(modules: &[(&str, &str, &[&str], Outcome)], action: &str) -> Verdict {
    let folder = Folder::new();
    for (name, kind, actions, outcome) in modules {
        folder.add(
            name,
            kind,
            actions,
            "",
            &fixed(*outcome, &format!("{name} says so")),
        );
    }
    let engine = folder.engine(Limits::default());
    let explained = engine.explain(&request(action));
    let decided = engine.decide(&request(action));
    // `decide` names the same module and reason, without the list.
    assert_eq!(
        decided,
        Verdict {
            evaluated: Vec::new(),
            ..explained.clone()
        }
    );
    explained
}

/// Expect a verdict of `allowed`, decided by `policy`, with `reason`.
fn check(
    modules: &[(&str, &str, &[&str], Outcome)],
    action: &str,
    allowed: bool,
    policy: &str,
    reason: &str,
) {
    let verdict = combine(modules, action);
    assert_eq!(
        (
            verdict.allowed,
            verdict.policy.as_str(),
            verdict.reason.as_str()
        ),
        (allowed, policy, reason),
        "{modules:?} on {action}: {verdict:?}"
    );
}

use Outcome::{Allow, Deny, NotApplicable as Na};

#[test]
fn combination_rules() {
    const IAM: &[&str] = &["iam.*"];
    const ALL: &[&str] = &["*"];
    const ACME: &[&str] = &["acme.*"];
    // Default deny.
    check(
        &[],
        "iam.users.add",
        false,
        "",
        "no policy decides iam.users.add",
    );
    check(
        &[("rbac", "builtin", IAM, Allow)],
        "acme.widgets.make",
        false,
        "",
        "no policy decides acme.widgets.make",
    );
    // One built-in decides.
    check(
        &[("rbac", "builtin", IAM, Allow)],
        "iam.x",
        true,
        "rbac",
        "rbac says so",
    );
    check(
        &[("rbac", "builtin", IAM, Deny)],
        "iam.x",
        false,
        "rbac",
        "rbac says so",
    );
    // Any deny wins, whoever says it.
    check(
        &[
            ("rbac", "builtin", IAM, Allow),
            ("hours", "custom", ALL, Deny),
        ],
        "iam.x",
        false,
        "hours",
        "hours says so",
    );
    check(
        &[
            ("rbac", "builtin", IAM, Deny),
            ("yes", "custom", ALL, Allow),
        ],
        "iam.x",
        false,
        "rbac",
        "rbac says so",
    );
    // Not-applicable abstains.
    check(
        &[
            ("rbac", "builtin", IAM, Allow),
            ("hours", "custom", ALL, Na),
        ],
        "iam.x",
        true,
        "rbac",
        "rbac says so",
    );
    check(
        &[("a", "builtin", IAM, Na), ("b", "builtin", IAM, Allow)],
        "iam.x",
        true,
        "b",
        "b says so",
    );
    // A custom allow cannot widen a built-in's abstention.
    check(
        &[("rbac", "builtin", IAM, Na), ("yes", "custom", ALL, Allow)],
        "iam.x",
        false,
        "rbac",
        "no built-in policy allows iam.x; rbac abstained: rbac says so",
    );
    // Everyone abstains: deny.
    check(
        &[("rbac", "builtin", IAM, Na)],
        "iam.x",
        false,
        "rbac",
        "no built-in policy allows iam.x; rbac abstained: rbac says so",
    );
    check(
        &[("acme", "custom", ACME, Na)],
        "acme.x",
        false,
        "acme",
        "no policy allows acme.x; acme abstained: acme says so",
    );
    // A custom namespace no built-in decides: a custom allow suffices.
    check(
        &[
            ("rbac", "builtin", IAM, Deny),
            ("acme", "custom", ACME, Allow),
        ],
        "acme.widgets.make",
        true,
        "acme",
        "acme says so",
    );
    check(
        &[
            ("acme", "custom", ACME, Na),
            ("acme2", "custom", ACME, Allow),
        ],
        "acme.x",
        true,
        "acme2",
        "acme2 says so",
    );
}

#[test]
fn a_deny_stops_evaluation_and_the_list_shows_who_was_asked() {
    let verdict = combine(
        &[
            ("rbac", "builtin", &["*"], Deny),
            ("z-custom", "custom", &["*"], Allow),
        ],
        "iam.x",
    );
    let asked: Vec<_> = verdict
        .evaluated
        .iter()
        .map(|e| e.policy.as_str())
        .collect();
    assert_eq!(asked, ["rbac"]);
    let verdict = combine(
        &[
            ("z-builtin", "builtin", &["*"], Allow),
            ("a-custom", "custom", &["*"], Na),
        ],
        "iam.x",
    );
    let asked: Vec<_> = verdict
        .evaluated
        .iter()
        .map(|e| (e.policy.as_str(), e.outcome))
        .collect();
    assert_eq!(asked, [("z-builtin", Allow), ("a-custom", Na)]);
}

#[test]
fn a_faulting_custom_module_denies_what_a_builtin_allows() {
    let folder = Folder::new();
    folder.add("rbac", "builtin", &["iam.*"], "", GOOD);
    folder.add("hours", "custom", &["*"], "", &fixture("trap"));
    let verdict = folder.engine(Limits::default()).decide(&request("iam.x"));
    assert!(!verdict.allowed);
    assert_eq!(verdict.policy, "hours");
    assert_eq!(
        verdict.reason,
        "hours: trapped (wasm `unreachable` instruction executed)"
    );
}

#[test]
fn exclude_patterns_take_actions_out_of_a_module() {
    let folder = Folder::new();
    folder.add(
        "rbac",
        "builtin",
        &["iam.*", "agent.bind"],
        "exclude = [\"iam.events.*\", \"iam.account.get\"]",
        GOOD,
    );
    let engine = folder.engine(Limits::default());
    for (action, routed) in [
        ("iam.users.list", true),
        ("agent.bind", true),
        ("agent.bind.more", false),
        ("agent", false),
        ("iam", false),
        ("iam.", false),
        ("iam.account.get", false),
        ("iam.account.get.more", true),
        ("iam.events.list", false),
        ("iam.events", true),
        ("iamx.users", false),
    ] {
        let verdict = engine.decide(&request(action));
        assert_eq!(verdict.allowed, routed, "{action}: {verdict:?}");
        if !routed {
            assert_eq!(verdict.reason, format!("no policy decides {action}"));
        }
    }
}

// ---- reload -------------------------------------------------------------------------

#[test]
fn reload_swaps_in_a_valid_set_and_keeps_the_last_good_one_otherwise() {
    let folder = Folder::new();
    folder.add("rbac", "builtin", &["iam.*"], "", GOOD);
    let engine = folder.engine(Limits::default());
    assert!(engine.decide(&request("iam.x")).allowed);

    // A valid change swaps in.
    folder.put_wasm("rbac", &fixed(Deny, "closed for the night"));
    folder.add("acme", "custom", &["acme.*"], "", GOOD);
    assert_eq!(engine.reload().unwrap(), 2);
    assert_eq!(
        engine.decide(&request("iam.x")).reason,
        "closed for the night"
    );
    assert!(engine.decide(&request("acme.x")).allowed);

    // An invalid module anywhere keeps the whole previous set.
    folder.put_wasm("rbac", GOOD);
    folder.add("bad", "custom", &["*"], "", &fixture("abi99"));
    let error = engine.reload().unwrap_err().to_string();
    assert_eq!(error, "bad: speaks ABI v99, this host speaks v1");
    assert_eq!(
        engine.decide(&request("iam.x")).reason,
        "closed for the night"
    );
    assert_eq!(engine.current().policies().len(), 2);

    // Its manifest gone, the module left behind would never run: refused too.
    std::fs::remove_file(folder.path().join("bad.toml")).unwrap();
    let error = engine.reload().unwrap_err().to_string();
    assert!(
        error.ends_with("bad.wasm: no manifest names this module, so it would never decide: add its manifest (see `latchkey policy new`) or remove it"),
        "{error}"
    );
    assert_eq!(engine.current().policies().len(), 2);

    // Fixed, it loads.
    std::fs::remove_file(folder.wasm_path("bad")).unwrap();
    assert_eq!(engine.reload().unwrap(), 2);
    assert!(engine.decide(&request("iam.x")).allowed);
}

// ---- offline tools ------------------------------------------------------------------

#[test]
fn check_module_reports_a_valid_module_and_refuses_an_invalid_one() {
    let folder = Folder::new();
    folder.put_wasm("good", GOOD);
    folder.put_wasm("abi99", &fixture("abi99"));
    let report = check_module(&folder.wasm_path("good"), &Limits::default()).unwrap();
    assert_eq!(report.name, "good");
    assert_eq!(report.abi_version, 1);
    assert_eq!(
        (report.memory_min_pages, report.memory_max_pages),
        (1, None)
    );
    assert!(report.bytes > 0);
    let error = check_module(&folder.wasm_path("abi99"), &Limits::default()).unwrap_err();
    assert_eq!(
        error.to_string(),
        "abi99: speaks ABI v99, this host speaks v1"
    );
}

#[test]
fn run_cases_reports_each_pass_and_failure() {
    let folder = Folder::new();
    folder.put_wasm("good", GOOD);
    folder.put_wasm("loop", &fixture("loop"));
    let req = serde_json::to_value(request("iam.x")).unwrap();
    let cases = serde_json::json!([
        {"name": "allows", "request": req, "expect": "allow"},
        {"name": "should deny", "request": req, "expect": "deny"},
        {"name": "should abstain", "request": req, "expect": "not_applicable"},
    ])
    .to_string();
    let report = run_cases(&folder.wasm_path("good"), &cases, &Limits::default()).unwrap();
    assert_eq!((report.passed(), report.failed()), (1, 2));
    let failures: Vec<_> = report
        .results
        .iter()
        .map(|r| (r.name.as_str(), r.passed, r.failure.as_deref()))
        .collect();
    assert_eq!(
        failures,
        [
            ("allows", true, None),
            (
                "should deny",
                false,
                Some("expected deny, got allow from good: ok")
            ),
            (
                "should abstain",
                false,
                Some("expected not_applicable, got allow from good: ok")
            ),
        ]
    );

    // A fault fails even a case that expects a deny.
    let limits = Limits {
        fuel: 1000,
        ..Limits::default()
    };
    let report = run_cases(&folder.wasm_path("loop"), &cases, &limits).unwrap();
    assert_eq!(report.passed(), 0);
    assert_eq!(
        report.results.get(1).and_then(|r| r.failure.as_deref()),
        Some("expected deny, but loop: ran out of fuel (1000)")
    );

    let error = run_cases(&folder.wasm_path("good"), "[{\"name\": 1}]", &limits).unwrap_err();
    assert!(error.to_string().starts_with("decision cases: "), "{error}");
}

// ---- speed (printed, not asserted) --------------------------------------------------

#[test]
fn warm_decision_time() {
    let folder = Folder::new();
    folder.add("good", "builtin", &["iam.*"], "", GOOD);
    folder.add(
        "fresh",
        "builtin",
        &["fresh.*"],
        "isolation = \"per-decision\"",
        GOOD,
    );
    let engine = folder.engine(Limits::default());
    let policy_time = |action: &str, n: u32| {
        let req = request(action);
        for _ in 0..100 {
            engine.decide(&req);
        }
        let start = Instant::now();
        for _ in 0..n {
            assert!(engine.decide(&req).allowed);
        }
        start.elapsed().as_nanos() / u128::from(n)
    };
    let warm = policy_time("iam.x", 20_000);
    let fresh = policy_time("fresh.x", 500);
    println!("warm decision (engine.decide, reuse): {warm} ns");
    println!("per-decision isolation (fresh instance): {fresh} ns");

    // The same decision without routing or combination: one module alone.
    let set = engine.current();
    let good = set.policies().iter().find(|p| p.name() == "good").unwrap();
    let req = request("iam.x");
    let n = 20_000u32;
    let start = Instant::now();
    for _ in 0..n {
        assert!(good.evaluate(&req).is_ok());
    }
    let sandbox = start.elapsed().as_nanos() / u128::from(n);
    println!("one module (encode, reset, alloc, write, evaluate, decode): {sandbox} ns");
}
