//! The command line: offline operator commands on a data directory. Each prints one JSON
//! object on stdout (`completions` and `man` print their script or page); errors go to
//! stderr as one sentence.
//!
//! Exit codes: 0 success (valid / intact); 1 a negative answer (invalid credential, broken
//! chain, head mismatch); 2 the command could not run (bad arguments, locked database,
//! refused request).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use serde_json::{Value, json};

use crate::app::{AppError, Config, Latchkey, looks_like_ssh_key};
use crate::domain::credential::Rejection;
use crate::domain::token;
use crate::policy;
use crate::server::config::{LogFormat, Logging, ServeOptions};

/// latchkey: a self-hosted identity and access appliance.
#[derive(Debug, Parser)]
#[command(name = "latchkey", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create an account and its first administrator; print its one-time API key.
    Init {
        #[command(flatten)]
        data: DataDirArg,
        #[command(flatten)]
        policies: PoliciesArg,
        /// Name of the new account (unique).
        #[arg(long)]
        account: String,
        /// Email of the first administrator.
        #[arg(long)]
        admin_email: String,
    },
    /// Verify a token (or an OpenSSH public key) and print who it is, or why not.
    Verify {
        #[command(flatten)]
        data: DataDirArg,
        /// The token or public key.
        token: String,
    },
    /// Audit trail commands.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Break-glass: restore a locked-out administrator (disabled, lost MFA, IP-restricted)
    /// and print a one-time API key for it. Run on the host with the server stopped.
    Recover {
        #[command(flatten)]
        on: AccountArgs,
        /// The administrator's email.
        #[arg(long)]
        email: String,
    },
    /// Check a stopped server's whole file: redb's integrity check, every record, the
    /// indexes and the audit chains. Exit 0 intact, 1 damaged (each problem named), 2
    /// could not run.
    Check {
        #[command(flatten)]
        data: DataDirArg,
    },
    /// Take a consistent snapshot of the running server on the data directory (through
    /// its admin socket) into FILE: every account, made in one read transaction while
    /// writes go on. The server key is not in it: keep `server.key` apart.
    Backup {
        #[command(flatten)]
        data: DataDirArg,
        /// Where to write the snapshot (0600; replaced atomically if it exists).
        #[arg(long)]
        out: PathBuf,
    },
    /// Make a new data directory from a backup and the server key it was made with. The
    /// backup is checked in full first, like `check`; a damaged one is refused (exit 1)
    /// and nothing is made. Never overwrites a data directory.
    Restore {
        #[command(flatten)]
        data: DataDirArg,
        /// The server key of the backed-up data directory (its `server.key`).
        #[arg(long)]
        key: PathBuf,
        /// The backup file (from `latchkey backup`).
        file: PathBuf,
    },
    /// Bulk-load a stopped data directory, as the system principal, with an event for
    /// every change. `--jsonl FILE` (`-` for stdin) reads users, bots, tenants, custom
    /// roles, role assignments and SSH public keys, one JSON record per line (README:
    /// "Importing"), in transactions of `--batch` lines; the first bad line stops the
    /// import, and the report names it and how many lines are in. `--mint-api-keys N`
    /// makes N API keys owned by a bot user of the account (for benchmarks and load
    /// tests) and writes their one-time secrets to `--secrets-out`, one per line (0600).
    Import {
        #[command(flatten)]
        on: AccountArgs,
        /// JSON lines to import (`-`: standard input).
        #[arg(long, required_unless_present = "mint_api_keys")]
        jsonl: Option<PathBuf>,
        /// Lines per transaction.
        #[arg(long, default_value_t = 1_000)]
        batch: usize,
        /// How many API keys to make.
        #[arg(long, requires = "secrets_out")]
        mint_api_keys: Option<usize>,
        /// The bot user that owns them (made if the account has none of that name).
        #[arg(long, default_value = "imported")]
        owner_bot: String,
        /// Where to write the secrets (a new file).
        #[arg(long, requires = "mint_api_keys")]
        secrets_out: Option<PathBuf>,
    },
    /// Bring the database to this build's schema version.
    Migrate {
        #[command(flatten)]
        data: DataDirArg,
    },
    /// Serve the HTTPS API (bootstrapping a fresh data directory like `init`).
    Serve(Box<ServeArgs>),
    /// Policy author tools.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// The server key.
    Key {
        #[command(subcommand)]
        command: KeyCommand,
    },
    /// Offline administration of an account's members, on a stopped server's data
    /// directory, as the system principal (every change an event), for when the API is
    /// not reachable.
    Users {
        #[command(subcommand)]
        command: UsersCommand,
    },
    /// Offline administration of an account's credentials (authtokens, API keys, SSH
    /// keys), on a stopped server's data directory, as the system principal.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Print a completion script for a shell (bash, zsh, fish, elvish, powershell), e.g.
    /// `latchkey completions bash > /etc/bash_completion.d/latchkey`.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff, from the same definitions as --help): `latchkey man |
    /// man -l -`. With --dir, write latchkey.1 and one page per subcommand there.
    Man {
        /// Where to write every page.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

/// The account an offline command acts in, and where its data is.
#[derive(Debug, Args)]
struct AccountArgs {
    #[command(flatten)]
    data: DataDirArg,
    #[command(flatten)]
    policies: PoliciesArg,
    /// The account's name.
    #[arg(long)]
    account: String,
}

#[derive(Debug, Subcommand)]
enum UsersCommand {
    /// Every member of the account, newest first, as the API shows them.
    List {
        #[command(flatten)]
        on: AccountArgs,
    },
    /// One member, by user id (usr_…) or email.
    Show {
        #[command(flatten)]
        on: AccountArgs,
        /// The member's user id or email.
        user: String,
    },
    /// Disable a member: none of its credentials in the account verify until it is
    /// enabled again (the last active administrator cannot be disabled).
    Disable {
        #[command(flatten)]
        on: AccountArgs,
        /// The member's user id or email.
        user: String,
    },
    /// Enable a disabled member again.
    Enable {
        #[command(flatten)]
        on: AccountArgs,
        /// The member's user id or email.
        user: String,
    },
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Every credential of the account (authtokens, API keys, SSH keys), newest first,
    /// without secrets.
    List {
        #[command(flatten)]
        on: AccountArgs,
    },
    /// Revoke and delete a credential by id (cr_…, ak_…, sshcr_…).
    Revoke {
        #[command(flatten)]
        on: AccountArgs,
        /// The credential's id.
        id: String,
    },
}

#[derive(Debug, Subcommand)]
enum KeyCommand {
    /// Rotate the server key of the server running on the data directory (through its
    /// admin socket): a new key version hashes and seals from now on, TOTP seeds and
    /// invitation tokens are re-sealed under it, and what was made under older versions
    /// keeps working. `server.key` then holds every version: back it up again.
    Rotate {
        #[command(flatten)]
        data: DataDirArg,
    },
}

#[derive(Debug, Subcommand)]
enum PolicyCommand {
    /// Create a new policy crate on the SDK (it builds offline, outside any repository).
    New {
        /// The policy's name: lowercase letters, digits and '-'.
        name: String,
        /// Where to create it.
        #[arg(long, default_value = ".")]
        dir: PathBuf,
    },
    /// Validate a module against ABI v1 and the sandbox rules, and its manifest against the
    /// actions latchkey knows, as the server does at load.
    Check {
        /// The compiled module (`.wasm`), or its manifest (`.toml`). A module is checked
        /// with the manifest of the same name beside it, when there is one.
        module: PathBuf,
    },
    /// Run decision cases against a policies folder (its modules combined as the server
    /// combines them) or one module, and report each module's coverage. Cases are in the
    /// API's shape with fixtures, or a JSON array of {name, request, expect}.
    Test {
        /// The policies folder, or one compiled module.
        module: PathBuf,
        /// The cases file.
        cases: PathBuf,
    },
    /// Show the live policy set of the server running on the data directory (through its
    /// admin socket): modules, routed patterns, limits, hashes and the generation.
    List {
        #[command(flatten)]
        data: DataDirArg,
    },
    /// Show the appliance trail of the server running on the data directory (through its
    /// admin socket): every start and reload of the policy set, refused ones with their
    /// reason, newest first (the last 100), with the modules and hashes before and after.
    History {
        #[command(flatten)]
        data: DataDirArg,
    },
    /// Reload the policies folder of the server running on the data directory (through
    /// its admin socket); an invalid set is refused and the current one stays (exit 1).
    Reload {
        #[command(flatten)]
        data: DataDirArg,
    },
    /// Write this binary's built-in policies (account-rbac, tenant-roles: module and
    /// manifest) into the policies folder, replacing the copies there, and say which
    /// differed; a running server uses them after `policy reload` (or SIGHUP).
    InstallBuiltins {
        #[command(flatten)]
        data: DataDirArg,
        #[command(flatten)]
        policies: PoliciesArg,
    },
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Check every account's event hash chain and print the head to anchor elsewhere.
    Verify {
        #[command(flatten)]
        data: DataDirArg,
        /// Fail unless the head equals this value, recorded earlier outside the host.
        #[arg(long)]
        expect_head: Option<String>,
    },
    /// Export every account's events before a time, from the running server (through its
    /// admin socket), as JSON lines that verify on their own (`verify-export`).
    Export {
        #[command(flatten)]
        data: DataDirArg,
        /// Events before this RFC 3339 time.
        #[arg(long)]
        before: String,
        /// Where to write the export (0600).
        #[arg(long)]
        out: PathBuf,
    },
    /// Check an export file alone: every event's bytes, each link and each chain's end.
    VerifyExport {
        /// The export file.
        file: PathBuf,
    },
    /// Delete from the running server exactly the events an export holds (it is
    /// verified first, and the server checks it against the chain), leaving each chain
    /// anchored where the export ends.
    Prune {
        #[command(flatten)]
        data: DataDirArg,
        /// The export file of the events to delete.
        file: PathBuf,
    },
}

#[derive(Debug, Args)]
struct DataDirArg {
    /// The data directory (database and server key).
    #[arg(long, env = "LATCHKEY_DATA_DIR", default_value = "./latchkey-data")]
    data_dir: PathBuf,
}

/// `serve`'s settings; each may also come from the environment or the `--config` file.
#[derive(Debug, Args)]
struct ServeArgs {
    /// A TOML file with any of the settings below (snake_case keys); flags and
    /// environment variables win over it.
    #[arg(long, env = "LATCHKEY_CONFIG")]
    config: Option<PathBuf>,
    /// The data directory [default: ./latchkey-data].
    #[arg(long, env = "LATCHKEY_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// The policies folder [default: ./policies].
    #[arg(long, env = "LATCHKEY_POLICIES")]
    policies: Option<PathBuf>,
    /// ip:port to listen on [default: 127.0.0.1:8443].
    #[arg(long, env = "LATCHKEY_LISTEN")]
    listen: Option<String>,
    /// PEM certificate chain; without it (and --tls-key) a self-signed certificate is
    /// made in DATA_DIR/tls/cert.pem.
    #[arg(long, env = "LATCHKEY_TLS_CERT")]
    tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, env = "LATCHKEY_TLS_KEY")]
    tls_key: Option<PathBuf>,
    /// https://host:port used for every `uri` in responses [default: the request's host].
    #[arg(long, env = "LATCHKEY_PUBLIC_URL")]
    public_url: Option<String>,
    /// Account made on a fresh data directory [default: default].
    #[arg(long, env = "LATCHKEY_ACCOUNT")]
    account: Option<String>,
    /// Its first administrator [default: admin@latchkey.localhost].
    #[arg(long, env = "LATCHKEY_ADMIN_EMAIL")]
    admin_email: Option<String>,
    /// Log format on stderr [default: text].
    #[arg(long, env = "LATCHKEY_LOG_FORMAT", value_enum)]
    log_format: Option<LogFormat>,
    /// What is logged: error, warn, info, debug or trace, or tracing directives such as
    /// info,latchkey::api=debug [default: info].
    #[arg(long, env = "LATCHKEY_LOG")]
    log_level: Option<String>,
    /// Milliseconds a client has for the TLS handshake, each request's head (also the
    /// idle wait between requests on a kept-alive connection) and each request's body
    /// [default: 10000].
    #[arg(long, env = "LATCHKEY_CLIENT_TIMEOUT_MS")]
    client_timeout_ms: Option<u64>,
    /// SMTP server for invitation mail: smtp://host:port, smtp://host?tls=required
    /// (STARTTLS) or smtps://host, with user:password@ if needed [default: none, the
    /// links stay in the outbox].
    #[arg(long, env = "LATCHKEY_SMTP_URL")]
    smtp_url: Option<String>,
    /// Sender of invitation mail [default: latchkey <latchkey@localhost>].
    #[arg(long, env = "LATCHKEY_MAIL_FROM")]
    mail_from: Option<String>,
    /// argon2id memory per new password hash, in KiB [default: 19456, OWASP's].
    #[arg(long, env = "LATCHKEY_ARGON2_MEMORY_KIB")]
    argon2_memory_kib: Option<u32>,
    /// argon2id passes per new password hash [default: 2, OWASP's].
    #[arg(long, env = "LATCHKEY_ARGON2_ITERATIONS")]
    argon2_iterations: Option<u32>,
    /// Password hashes (logins, password changes) computed at once; more wait in a
    /// queue of 64, then are refused with 429 [default: the cores less one, at least 1,
    /// so a flood of logins never takes every core from request handling].
    #[arg(long, env = "LATCHKEY_PASSWORD_WORKERS")]
    password_workers: Option<usize>,
    /// Let event destinations be on loopback, private, link-local and other non-public
    /// addresses (refused by default: an account administrator could otherwise make the
    /// appliance reach services only it can reach).
    #[arg(long, env = "LATCHKEY_ALLOW_PRIVATE_DESTINATIONS")]
    allow_private_destinations: bool,
    /// redb's page cache in MiB [default: 32]. Credential lookups never read it (the
    /// in-memory index answers them); it serves list pages, writes and startup.
    #[arg(long, env = "LATCHKEY_DB_CACHE_MIB")]
    db_cache_mib: Option<u64>,
}

impl ServeArgs {
    fn options(self) -> Result<ServeOptions, AppError> {
        let file = match &self.config {
            Some(path) => ServeOptions::from_file(path).map_err(AppError::DataDir)?,
            None => ServeOptions::default(),
        };
        let given = ServeOptions {
            data_dir: self.data_dir,
            policies: self.policies,
            listen: self.listen,
            tls_cert: self.tls_cert,
            tls_key: self.tls_key,
            public_url: self.public_url,
            account: self.account,
            admin_email: self.admin_email,
            log_format: self.log_format,
            log_level: self.log_level,
            client_timeout_ms: self.client_timeout_ms,
            smtp_url: self.smtp_url,
            mail_from: self.mail_from,
            argon2_memory_kib: self.argon2_memory_kib,
            argon2_iterations: self.argon2_iterations,
            password_workers: self.password_workers,
            allow_private_destinations: self.allow_private_destinations.then_some(true),
            db_cache_mib: self.db_cache_mib,
        };
        Ok(given.or(file))
    }
}

#[derive(Debug, Args)]
struct PoliciesArg {
    /// The policies folder: the built-in modules and any custom ones, with manifests
    /// [default: DATA_DIR/policies].
    #[arg(long, env = "LATCHKEY_POLICIES")]
    policies: Option<PathBuf>,
}

impl PoliciesArg {
    /// The folder given, or the data directory's own.
    fn folder(&self, data: &DataDirArg) -> PathBuf {
        self.policies
            .clone()
            .unwrap_or_else(|| data.data_dir.join(policy::builtin::DEFAULT_FOLDER))
    }
}

/// Run the command line and return the process exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // A panic (the storage library can panic on a damaged file) is one line on stderr,
    // not a backtrace, and the command ends with exit 2 rather than 101.
    std::panic::set_hook(Box::new(|info| {
        eprintln!("latchkey: internal failure: {info}")
    }));
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(cli.command)));
    let Ok(outcome) = outcome else {
        eprintln!(
            "latchkey: stopped by an internal failure; a damaged data directory can cause one: `latchkey check` tells"
        );
        return ExitCode::from(2);
    };
    match outcome {
        Ok((output, code)) => {
            // A reader that went away (`| head`) is not an error worth a panic. Text (a
            // completion script, a manual page) is printed as it is.
            let _ = match output {
                Value::String(text) => write!(std::io::stdout(), "{text}"),
                output => writeln!(std::io::stdout(), "{output}"),
            };
            ExitCode::from(code)
        }
        Err(err) => {
            eprintln!("latchkey: {err}");
            if let AppError::Policy(_) = err {
                eprintln!(
                    "latchkey: the policies folder is named by --policies or LATCHKEY_POLICIES"
                );
            }
            ExitCode::from(2)
        }
    }
}

fn open(data: &DataDirArg) -> Result<Latchkey, AppError> {
    Latchkey::open(Config::new(&data.data_dir))
}

fn run(command: Command) -> Result<(Value, u8), AppError> {
    match command {
        Command::Policy { command } => run_policy(command),
        Command::Backup { data, out } => backup(&data, &out),
        Command::Key {
            command: KeyCommand::Rotate { data },
        } => operator_call(&data, "key.rotate"),
        Command::Users { command } => run_users(command),
        Command::Keys { command } => run_keys(command),
        Command::Restore { data, key, file } => {
            let dir = crate::app::DataDir::new(&data.data_dir);
            let restored = quietly(|| dir.restore(&file, &key))
                .map_err(|panic| AppError::DataDir(format!("the restore failed: {panic}")))??;
            Ok(match restored {
                crate::app::Restore::Made { report, snapshot } => (
                    json!({
                        "ok": true,
                        "data_dir": data.data_dir.display().to_string(),
                        "records": report.records,
                        "commits": snapshot.commits,
                        "events": report.audit.as_ref().map(|a| a.events),
                        "head": report.audit.as_ref().map(|a| a.head.clone()),
                    }),
                    0,
                ),
                crate::app::Restore::Refused(problems) => (
                    json!({"ok": false, "restored": false, "problems": problems}),
                    1,
                ),
            })
        }
        Command::Check { data } => {
            let dir = crate::app::DataDir::new(&data.data_dir);
            dir.server_keys(false)?;
            let path = dir.database();
            let report = quietly(|| crate::store::check(&path));
            let (records, mut problems, audit) = match report {
                Ok(Ok(report)) => (report.records, report.problems, report.audit),
                Ok(Err(crate::store::StoreError::Locked)) => {
                    return Err(AppError::Store(crate::store::StoreError::Locked));
                }
                Ok(Err(err)) => (0, vec![err.to_string()], None),
                Err(panic) => (
                    0,
                    vec![format!("the storage library failed on this file: {panic}")],
                    None,
                ),
            };
            problems.dedup();
            let ok = problems.is_empty();
            let output = json!({
                "ok": ok,
                "records": records,
                "events": audit.as_ref().map(|a| a.events),
                "head": audit.as_ref().map(|a| a.head.clone()),
                "problems": problems,
            });
            Ok((output, u8::from(!ok)))
        }
        Command::Serve(args) => serve(*args),
        // Both print their text as it is, not a JSON object: it is what they are for.
        Command::Completions { shell } => {
            let mut command = <Cli as clap::CommandFactory>::command();
            let mut out = Vec::new();
            clap_complete::generate(shell, &mut command, "latchkey", &mut out);
            Ok((Value::String(String::from_utf8_lossy(&out).into_owned()), 0))
        }
        Command::Man { dir } => man(dir.as_deref()),
        Command::Init {
            data,
            policies,
            account,
            admin_email,
        } => {
            // A data directory without a policies folder of its own gets the built-ins.
            let folder = policies.folder(&data);
            policy::builtin::prepare(&data.data_dir, &folder)
                .map_err(|e| AppError::DataDir(format!("{}: {e}", folder.display())))?;
            let config = Config::new(&data.data_dir)
                .with_policies(&folder)
                .creating();
            let made = Latchkey::open(config)?.init(&account, &admin_email)?;
            // Offline, the server's address is not known: the default one.
            let base = format!("https://{}", crate::server::config::DEFAULT_LISTEN);
            let output = json!({
                "account_id": made.account.id.to_string(),
                "user_id": made.user.id.to_string(),
                "api_key": made.api_key.expose(),
                "setup_url": format!("{base}/password_reset?token={}", made.setup_link.expose()),
            });
            Ok((output, 0))
        }
        Command::Verify {
            data,
            token: presented,
        } => {
            // A token with a bad shape or checksum is refused before the database is opened.
            if !looks_like_ssh_key(&presented)
                && let Err(err) = token::parse(&presented)
            {
                let reason = match err {
                    token::TokenFormatError::Malformed => Rejection::Malformed,
                    token::TokenFormatError::BadChecksum => Rejection::BadChecksum,
                };
                return Ok((json!({"valid": false, "reason": reason.as_str()}), 1));
            }
            let latchkey = open(&data)?;
            let answer = latchkey.verify(&presented);
            latchkey.flush_usage()?;
            Ok(match answer {
                Ok(verified) => (crate::api::verified_json(&verified), 0),
                Err(rejection) => (json!({"valid": false, "reason": rejection.as_str()}), 1),
            })
        }
        Command::Audit {
            command: AuditCommand::Verify { data, expect_head },
        } => {
            let read = quietly(|| open(&data)?.verify_audit_chain());
            // A file the storage library cannot read, or panics on, is damage: a negative
            // answer (exit 1), like a broken chain. A missing or locked one is not.
            let damage = |detail: String| {
                Ok((
                    json!({"ok": false, "first_broken": null, "detail": detail}),
                    1,
                ))
            };
            let report = match read {
                Ok(Ok(report)) => report,
                Ok(Err(AppError::Store(
                    err @ (crate::store::StoreError::Storage(_)
                    | crate::store::StoreError::Corrupt { .. }),
                ))) => return damage(err.to_string()),
                Ok(Err(other)) => return Err(other),
                Err(panic) => return damage(format!("the storage library failed: {panic}")),
            };
            if let Some(broken) = report.broken {
                let output = json!({
                    "ok": false,
                    "first_broken": broken.event,
                    "account_id": broken.account.to_string(),
                    "detail": broken.detail,
                });
                return Ok((output, 1));
            }
            match expect_head {
                Some(expected) if !expected.trim().eq_ignore_ascii_case(&report.head) => Ok((
                    json!({
                        "ok": false,
                        "events": report.events,
                        "head": report.head,
                        "expected_head": expected.trim(),
                        "detail": "the chain is intact but its head is not the one expected: events were removed or rewritten since it was recorded",
                    }),
                    1,
                )),
                _ => Ok((
                    json!({"ok": true, "events": report.events, "head": report.head}),
                    0,
                )),
            }
        }
        Command::Audit {
            command: AuditCommand::Export { data, before, out },
        } => {
            let request = json!({"op": "audit.export", "before": before});
            let mut answer = crate::server::admin::download(&data.data_dir, &request, &out)
                .map_err(AppError::DataDir)?;
            if answer.get("ok").and_then(Value::as_bool) != Some(true) {
                return Ok((answer, 1));
            }
            // What arrived verifies on its own before the operator relies on it.
            let chains = verify_export_file(&out)?;
            if let Some(fields) = answer.as_object_mut() {
                fields.insert("verified".into(), chains.is_ok().into());
            }
            Ok((answer, u8::from(chains.is_err())))
        }
        Command::Audit {
            command: AuditCommand::VerifyExport { file },
        } => Ok(match verify_export_file(&file)? {
            Ok(chains) => (
                json!({
                    "ok": true,
                    "accounts": chains.len(),
                    "events": chains.iter().map(|c| c.next_seq - c.from_seq).sum::<u64>(),
                    "chains": chains.iter().map(crate::server::admin::chain_json).collect::<Vec<_>>(),
                }),
                0,
            ),
            Err(problem) => (json!({"ok": false, "problem": problem}), 1),
        }),
        Command::Audit {
            command: AuditCommand::Prune { data, file },
        } => {
            let chains = match verify_export_file(&file)? {
                Ok(chains) => chains,
                Err(problem) => {
                    return Ok((
                        json!({"ok": false, "pruned": 0, "problem": format!("the export does not verify: {problem}")}),
                        1,
                    ));
                }
            };
            let request = json!({
                "op": "audit.prune",
                "chains": chains.iter().map(crate::server::admin::chain_json).collect::<Vec<_>>(),
            });
            let answer = crate::server::admin::call_with(&data.data_dir, &request)
                .map_err(AppError::DataDir)?;
            let ok = answer.get("ok").and_then(Value::as_bool) == Some(true);
            Ok((answer, u8::from(!ok)))
        }
        Command::Recover { on, email } => {
            let config = Config::new(&on.data.data_dir).with_policies(on.policies.folder(&on.data));
            let done = Latchkey::open(config)?.recover(&on.account, &email)?;
            let relaxed: Vec<String> = done.relaxed.iter().map(ToString::to_string).collect();
            let output = json!({
                "account_id": done.account.to_string(),
                "user_id": done.user.to_string(),
                "api_key": done.api_key.expose(),
                "enabled": done.enabled,
                "made_admin": done.made_admin,
                "mfa_removed": done.mfa_removed,
                "ip_restrictions_made_warn_only": relaxed,
            });
            Ok((output, 0))
        }
        Command::Import {
            on,
            jsonl,
            batch,
            mint_api_keys,
            owner_bot,
            secrets_out,
        } => {
            let started = std::time::Instant::now();
            let (lk, account_id) = open_account(&on)?;
            let mut output = serde_json::Map::new();
            output.insert("ok".into(), json!(true));
            output.insert("account_id".into(), json!(account_id.to_string()));
            if let Some(path) = jsonl {
                let report = if path.as_os_str() == "-" {
                    lk.import_jsonl(account_id, std::io::stdin().lock(), batch)
                } else {
                    let file = std::fs::File::open(&path).map_err(|e| {
                        AppError::DataDir(format!("cannot open {}: {e}", path.display()))
                    })?;
                    lk.import_jsonl(account_id, std::io::BufReader::new(file), batch)
                };
                match report {
                    Ok(report) => {
                        output.insert("records".into(), json!(report.records));
                        output.insert("batches".into(), json!(report.batches));
                        let by_type = report
                            .by_type
                            .iter()
                            .map(|(kind, n)| (kind.to_string(), json!(n)));
                        output.insert("by_type".into(), Value::Object(by_type.collect()));
                    }
                    Err(failure) => {
                        return Ok((
                            json!({
                                "ok": false,
                                "line": failure.line,
                                "imported": failure.imported,
                                "error": failure.error.to_string(),
                            }),
                            1,
                        ));
                    }
                }
            }
            if let (Some(count), Some(secrets_out)) = (mint_api_keys, secrets_out) {
                let made = mint(&lk, account_id, &owner_bot, count, &secrets_out)?;
                output.insert("api_keys".into(), json!(made));
                output.insert(
                    "secrets_out".into(),
                    json!(secrets_out.display().to_string()),
                );
            }
            output.insert("seconds".into(), json!(started.elapsed().as_secs_f64()));
            Ok((Value::Object(output), 0))
        }
        Command::Migrate { data } => {
            let steps = Latchkey::migrate(&data.data_dir)?;
            Ok((
                json!({"ok": true, "schema_version": crate::store::SCHEMA_VERSION, "steps": steps}),
                0,
            ))
        }
    }
}

/// `import --mint-api-keys`: `count` API keys owned by bot `owner`, their secrets written
/// to `secrets_out` (a new file, 0600, made before any key so a bad path costs nothing).
fn mint(
    lk: &Latchkey,
    account: crate::domain::id::AccountId,
    owner: &str,
    count: usize,
    secrets_out: &Path,
) -> Result<usize, AppError> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(secrets_out)
        .map_err(|e| AppError::DataDir(format!("cannot create {}: {e}", secrets_out.display())))?;
    let secrets = lk.mint_api_keys(account, owner, count)?;
    let mut out = std::io::BufWriter::new(file);
    for secret in &secrets {
        writeln!(out, "{}", secret.expose())
            .map_err(|e| AppError::DataDir(format!("writing the secrets: {e}")))?;
    }
    out.flush()
        .map_err(|e| AppError::DataDir(format!("writing the secrets: {e}")))?;
    Ok(secrets.len())
}

/// `latchkey serve`: runs until SIGTERM or ctrl-c. On stdout, one JSON line with the
/// bootstrap account and API key (only on a fresh data directory), then one with the
/// address and the certificate to trust; logs go to stderr.
fn serve(args: ServeArgs) -> Result<(Value, u8), AppError> {
    let (config, logging) = args.options()?.resolve().map_err(AppError::DataDir)?;
    init_logging(&logging);
    crate::server::run(config, |started| {
        let mut out = std::io::stdout().lock();
        if let Some(made) = &started.bootstrapped {
            let _ = writeln!(
                out,
                "{}",
                json!({
                    "account_id": made.account.id.to_string(),
                    "user_id": made.user.id.to_string(),
                    "api_key": made.api_key.expose(),
                    "setup_url": started.setup_url(),
                })
            );
            eprintln!(
                "latchkey: bootstrapped account {} with administrator {}; the api_key and the setup_url above (where the administrator sets its password, for a day) are shown this once",
                made.account.name,
                made.user.email.as_str()
            );
        }
        let _ = writeln!(
            out,
            "{}",
            json!({
                "listening": format!("https://{}", started.addr),
                "tls_cert": started.cert_path.display().to_string(),
            })
        );
        let _ = out.flush();
    })
    .map_err(|err| AppError::DataDir(err.to_string()))?;
    Ok((json!({"stopped": true}), 0))
}

fn init_logging(logging: &Logging) {
    use tracing_subscriber::EnvFilter;
    // Checked when the settings were resolved.
    let filter = EnvFilter::builder()
        .parse(&logging.level)
        .unwrap_or_else(|_| EnvFilter::new(crate::server::config::DEFAULT_LOG_LEVEL));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let _ = match logging.format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// Run `work`, turning a panic inside it (a damaged file can make the storage library
/// panic) into an error with its message, without printing a backtrace.
fn quietly<T>(work: impl FnOnce() -> T) -> Result<T, String> {
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(work));
    std::panic::set_hook(hook);
    result.map_err(|panic| {
        panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic".to_owned())
    })
}

/// An operation of the running server, through its admin socket: a refusal is a negative
/// answer (exit 1); no server to ask, the command could not run (exit 2).
#[cfg(unix)]
fn operator_call(data: &DataDirArg, op: &str) -> Result<(Value, u8), AppError> {
    let answer = crate::server::admin::call(&data.data_dir, op).map_err(AppError::DataDir)?;
    let ok = answer.get("ok").and_then(Value::as_bool) == Some(true);
    let code = if ok { 0 } else { 1 };
    Ok((answer, code))
}

/// Verify an export file: the chains it holds, or (as the inner error) what is wrong.
fn verify_export_file(
    path: &Path,
) -> Result<Result<Vec<crate::store::ExportedChain>, String>, AppError> {
    let file = std::fs::File::open(path)
        .map_err(|e| AppError::DataDir(format!("cannot read {}: {e}", path.display())))?;
    Ok(crate::store::verify_export(std::io::BufReader::new(file)))
}

/// `latchkey backup`: the snapshot through the admin socket, written to `out`.
#[cfg(unix)]
fn backup(data: &DataDirArg, out: &Path) -> Result<(Value, u8), AppError> {
    let answer = crate::server::admin::backup(&data.data_dir, out).map_err(AppError::DataDir)?;
    let ok = answer.get("ok").and_then(Value::as_bool) == Some(true);
    Ok((answer, if ok { 0 } else { 1 }))
}

#[cfg(not(unix))]
fn backup(_: &DataDirArg, _: &Path) -> Result<(Value, u8), AppError> {
    Err(AppError::DataDir(
        "the admin socket needs a Unix host".to_owned(),
    ))
}

#[cfg(not(unix))]
fn operator_call(_: &DataDirArg, _: &str) -> Result<(Value, u8), AppError> {
    Err(AppError::DataDir(
        "the admin socket needs a Unix host".to_owned(),
    ))
}

/// `latchkey policy …`: problems with the module or the cases are a negative answer
/// (exit 1) with the reason, not a failure to run.
fn run_policy(command: PolicyCommand) -> Result<(Value, u8), AppError> {
    let limits = policy::Limits::default();
    Ok(match command {
        // A name or folder that does not work is a command that could not run (exit 2).
        PolicyCommand::New { name, dir } => {
            let root = crate::scaffold::new_policy(&dir, &name)
                .map_err(|err| AppError::DataDir(err.to_string()))?;
            (json!({"ok": true, "path": root.display().to_string()}), 0)
        }
        PolicyCommand::Check { module } => match policy::check_module(&module, &limits) {
            Ok(report) => (
                json!({
                    "ok": true,
                    "module": report.name,
                    "abi_version": report.abi_version,
                    "bytes": report.bytes,
                    "memory_pages": report.memory_min_pages,
                    "manifest": report.manifest.map(|m| m.display().to_string()),
                }),
                0,
            ),
            // A file that cannot be read was not checked (exit 2).
            Err(err @ policy::PolicyError::Io { .. }) => {
                return Err(AppError::DataDir(err.to_string()));
            }
            Err(err) => (json!({"ok": false, "error": err.to_string()}), 1),
        },
        PolicyCommand::List { data } => return operator_call(&data, "policy.list"),
        PolicyCommand::Reload { data } => return operator_call(&data, "policy.reload"),
        PolicyCommand::History { data } => return operator_call(&data, "policy.history"),
        PolicyCommand::InstallBuiltins { data, policies } => {
            let folder = policies.folder(&data);
            // Into the data directory's own folder only when the directory exists: an
            // offline command never makes a data directory.
            if policies.policies.is_none() && !data.data_dir.is_dir() {
                return Err(AppError::DataDir(format!(
                    "{}: no data directory here",
                    data.data_dir.display()
                )));
            }
            let before = policy::builtin::install(&folder)
                .map_err(|e| AppError::DataDir(format!("{}: {e}", folder.display())))?;
            let builtins: Vec<Value> = before
                .iter()
                .map(|(name, was)| json!({"name": name, "was": was.as_str()}))
                .collect();
            let changed = before
                .iter()
                .any(|(_, was)| *was != policy::builtin::Installed::Same);
            (
                json!({
                    "folder": folder.display().to_string(),
                    "builtins": builtins,
                    "changed": changed,
                }),
                0,
            )
        }
        PolicyCommand::Test { module, cases } => {
            // A cases file that cannot be read or is not a list of cases means the test
            // could not run (exit 2); a module that fails to load fails its cases (exit 1).
            let json = std::fs::read_to_string(&cases)
                .map_err(|e| AppError::DataDir(format!("cannot read {}: {e}", cases.display())))?;
            // A folder is tested as the server loads it: its modules combined, the
            // built-ins required.
            let subject = if module.is_dir() {
                policy::Subject::Folder(&module, &crate::app::REQUIRED_POLICIES)
            } else {
                policy::Subject::Module(&module)
            };
            let report = match policy::run(subject, &json, &limits) {
                Err(err @ policy::PolicyError::Cases { .. }) => {
                    return Err(AppError::DataDir(format!("{}: {err}", cases.display())));
                }
                Err(err @ policy::PolicyError::Io { .. }) => {
                    return Err(AppError::DataDir(err.to_string()));
                }
                other => other.map_err(|e| e.to_string()),
            };
            match report {
                Ok(report) => {
                    // A table for people on stderr; the JSON summary stays on stdout.
                    let width = report
                        .results
                        .iter()
                        .map(|r| r.name.len())
                        .max()
                        .unwrap_or(4);
                    for result in &report.results {
                        let verdict = if result.passed { "pass" } else { "FAIL" };
                        let why = result.failure.as_deref().unwrap_or("");
                        eprintln!("{verdict}  {:width$}  {why}", result.name);
                    }
                    let failures: Vec<Value> = report
                        .results
                        .iter()
                        .filter(|r| !r.passed)
                        .map(|r| json!({"name": r.name, "reason": r.failure}))
                        .collect();
                    let code = u8::from(!failures.is_empty());
                    eprintln!("{} passed, {} failed", report.passed(), report.failed());
                    // Coverage: what each module was routed and what it answered.
                    let named = report
                        .coverage
                        .iter()
                        .map(|c| c.policy.len())
                        .max()
                        .unwrap_or(0)
                        .max("coverage".len());
                    eprintln!("\n{:named$}  allow  deny  n/a  actions routed", "coverage");
                    for c in &report.coverage {
                        eprintln!(
                            "{:named$}  {:>5}  {:>4}  {:>3}  {} ({})",
                            c.policy,
                            c.allow,
                            c.deny,
                            c.not_applicable,
                            c.actions.len(),
                            if c.actions.is_empty() {
                                "no case reached it".to_owned()
                            } else {
                                c.actions.join(", ")
                            }
                        );
                    }
                    let coverage: Vec<Value> = report
                        .coverage
                        .iter()
                        .map(|c| {
                            json!({
                                "policy": c.policy,
                                "actions": c.actions,
                                "allow": c.allow,
                                "deny": c.deny,
                                "not_applicable": c.not_applicable,
                            })
                        })
                        .collect();
                    (
                        json!({"ok": code == 0, "passed": report.passed(), "failed": report.failed(), "failures": failures, "coverage": coverage}),
                        code,
                    )
                }
                Err(err) => (json!({"ok": false, "error": err}), 1),
            }
        }
    })
}

/// `latchkey man`: the top page on stdout, or every page (`latchkey.1`,
/// `latchkey-serve.1`, `latchkey-policy-check.1`, …) written into `dir`.
fn man(dir: Option<&Path>) -> Result<(Value, u8), AppError> {
    let command = <Cli as clap::CommandFactory>::command();
    let Some(dir) = dir else {
        let mut page = Vec::new();
        clap_mangen::Man::new(command)
            .render(&mut page)
            .map_err(|e| AppError::DataDir(format!("the manual page: {e}")))?;
        return Ok((
            Value::String(String::from_utf8_lossy(&page).into_owned()),
            0,
        ));
    };
    std::fs::create_dir_all(dir)
        .map_err(|e| AppError::DataDir(format!("{}: {e}", dir.display())))?;
    clap_mangen::generate_to(command, dir)
        .map_err(|e| AppError::DataDir(format!("{}: {e}", dir.display())))?;
    let mut pages: Vec<String> = std::fs::read_dir(dir)
        .map_err(|e| AppError::DataDir(format!("{}: {e}", dir.display())))?
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|name| name.ends_with(".1"))
        .collect();
    pages.sort();
    Ok((json!({"dir": dir.display().to_string(), "pages": pages}), 0))
}

/// The latchkey of an offline command's data directory, never made here, and its account.
fn open_account(on: &AccountArgs) -> Result<(Latchkey, crate::domain::id::AccountId), AppError> {
    let lk =
        Latchkey::open(Config::new(&on.data.data_dir).with_policies(on.policies.folder(&on.data)))?;
    let account = lk.account_named(&on.account)?;
    Ok((lk, account))
}

/// An API view without its `uri`: the command line has no server to point at.
fn offline_view(mut view: Value) -> Value {
    if let Some(object) = view.as_object_mut() {
        object.remove("uri");
    }
    view
}

/// Every item of a paged list, page after page.
fn every<T>(
    mut page: impl FnMut(crate::store::PageRequest) -> Result<crate::store::Page<T>, AppError>,
    id: impl Fn(&T) -> u128,
) -> Result<Vec<T>, AppError> {
    let mut all = Vec::new();
    let mut before = None;
    loop {
        let next = page(crate::store::PageRequest { before, limit: 100 })?;
        before = next.items.last().map(&id);
        all.extend(next.items);
        if !next.more || before.is_none() {
            return Ok(all);
        }
    }
}

fn run_users(command: UsersCommand) -> Result<(Value, u8), AppError> {
    use crate::domain::user::MemberState;
    let system = crate::domain::event::Actor::SYSTEM;
    let base = crate::api::views::Base::Public(std::sync::Arc::from(""));
    let member_view =
        |member: &crate::app::Member| offline_view(crate::api::views::member(&base, member));
    let (on, user, state) = match command {
        UsersCommand::List { on } => {
            let (lk, account) = open_account(&on)?;
            let members = every(
                |page| lk.members(system, account, page),
                |member| crate::domain::id::RawId::raw_id(member.user.id),
            )?;
            let users: Vec<Value> = members.iter().map(member_view).collect();
            return Ok((
                json!({"account_id": account.to_string(), "users": users}),
                0,
            ));
        }
        UsersCommand::Show { on, user } => (on, user, None),
        UsersCommand::Disable { on, user } => (on, user, Some(MemberState::Disabled)),
        UsersCommand::Enable { on, user } => (on, user, Some(MemberState::Active)),
    };
    let (lk, account) = open_account(&on)?;
    let id = lk.member_named(account, &user)?;
    let member = match state {
        None => lk.member(system, account, id)?,
        Some(state) => lk.set_member_state(system, account, id, state)?,
    };
    Ok((member_view(&member), 0))
}

fn run_keys(command: KeysCommand) -> Result<(Value, u8), AppError> {
    use crate::domain::credential::{CredentialId, CredentialKind};
    let system = crate::domain::event::Actor::SYSTEM;
    let base = crate::api::views::Base::Public(std::sync::Arc::from(""));
    match command {
        KeysCommand::List { on } => {
            let (lk, account) = open_account(&on)?;
            let mut credentials = Vec::new();
            for kind in [
                CredentialKind::Authtoken,
                CredentialKind::ApiKey,
                CredentialKind::SshKey,
            ] {
                let page = every(
                    |page| lk.credentials(system, account, kind, page),
                    |(credential, _)| credential.id.raw,
                )?;
                credentials.extend(page.into_iter().map(|(credential, used)| {
                    let mut view = offline_view(crate::api::views::credential(
                        &base,
                        &credential,
                        None,
                        used,
                    ));
                    if let Some(object) = view.as_object_mut() {
                        let name = match kind {
                            CredentialKind::Authtoken => "authtoken",
                            CredentialKind::ApiKey => "api_key",
                            CredentialKind::SshKey => "ssh_key",
                        };
                        object.insert("kind".into(), json!(name));
                    }
                    view
                }));
            }
            Ok((
                json!({"account_id": account.to_string(), "credentials": credentials}),
                0,
            ))
        }
        KeysCommand::Revoke { on, id } => {
            let (lk, account) = open_account(&on)?;
            let id: CredentialId = id.parse()?;
            lk.delete_credential(system, account, id)?;
            Ok((json!({"revoked": id.to_string()}), 0))
        }
    }
}
