//! The command line: offline operator commands on a data directory. Each prints one JSON
//! object on stdout; errors go to stderr as one sentence.
//!
//! Exit codes: 0 success (valid / intact); 1 a negative answer (invalid credential, broken
//! chain, head mismatch); 2 the command could not run (bad arguments, locked database,
//! refused request).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use serde_json::{Value, json};

use crate::app::{AppError, Config, Latchkey, looks_like_ssh_key};
use crate::domain::credential::{Rejection, Verified};
use crate::domain::token;

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
    /// Bring the database to this build's schema version.
    Migrate {
        #[command(flatten)]
        data: DataDirArg,
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
}

#[derive(Debug, Args)]
struct DataDirArg {
    /// The data directory (database and server key).
    #[arg(long, env = "LATCHKEY_DATA_DIR", default_value = "./latchkey-data")]
    data_dir: PathBuf,
}

/// Run the command line and return the process exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command) {
        Ok((output, code)) => {
            println!("{output}");
            ExitCode::from(code)
        }
        Err(err) => {
            eprintln!("latchkey: {err}");
            ExitCode::from(2)
        }
    }
}

fn open(data: &DataDirArg) -> Result<Latchkey, AppError> {
    Latchkey::open(Config::new(&data.data_dir))
}

fn run(command: Command) -> Result<(Value, u8), AppError> {
    match command {
        Command::Init {
            data,
            account,
            admin_email,
        } => {
            let made = open(&data)?.init(&account, &admin_email)?;
            let output = json!({
                "account_id": made.account.id.to_string(),
                "user_id": made.user.id.to_string(),
                "api_key": made.api_key.expose(),
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
                Ok(verified) => (verified_json(&verified), 0),
                Err(rejection) => (json!({"valid": false, "reason": rejection.as_str()}), 1),
            })
        }
        Command::Audit {
            command: AuditCommand::Verify { data, expect_head },
        } => {
            let report = open(&data)?.verify_audit_chain()?;
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
        Command::Migrate { data } => {
            let steps = Latchkey::migrate(&data.data_dir)?;
            Ok((
                json!({"ok": true, "schema_version": crate::store::SCHEMA_VERSION, "steps": steps}),
                0,
            ))
        }
    }
}

/// The verification answer in the shape of `POST /verify`.
pub fn verified_json(verified: &Verified) -> Value {
    json!({
        "valid": true,
        "credential_id": verified.credential.to_string(),
        "kind": verified.credential.kind.as_str(),
        "owner_id": verified.owner.id_string(),
        "owner_kind": verified.owner.kind_str(),
        "account_id": verified.account.to_string(),
        "acl": verified.acl.as_ref().map_or_else(Vec::new, |acl| acl.rules().to_vec()),
        "expires_at": verified.expires_at.map(|at| at.to_rfc3339()),
    })
}
