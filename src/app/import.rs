//! `latchkey import --jsonl`: bulk-load an account from JSON lines, for migrations from
//! other systems. Each line is one record, applied as the system principal through the
//! same operations the API uses (validated, authorized, recorded as an event), in
//! transactions of `batch` lines:
//!
//! ```text
//! {"type": "user", "email": "ana@example.com", "name": "Ana", "roles": {"developer": "read_write", "team": "invite", "billing": "none", "admin": false}}
//! {"type": "bot", "name": "ci"}
//! {"type": "tenant", "name": "Contoso", "description": "…"}
//! {"type": "role", "name": "Helpdesk", "permissions": ["computers.view", "computers.edit"]}
//! {"type": "assignment", "user": "ana@example.com", "role": "Technician", "tenant": "Contoso"}
//! {"type": "assignment", "bot": "ci", "role": "Read-Only"}
//! {"type": "ssh_key", "user": "ana@example.com", "public_key": "ssh-ed25519 AAAA… ana", "description": "laptop"}
//! ```
//!
//! Records name each other as a person would (an email, a bot, tenant or role name),
//! since the source system's ids mean nothing here; a name resolves to what the account
//! already holds or what an earlier line made. The first line that fails stops the import:
//! its whole batch is rolled back, earlier batches stay, and the report names the line
//! and how many lines are in (so the rest can be fixed and imported on their own).

use std::collections::HashMap;
use std::io::BufRead;

use serde::Deserialize;

use super::{AppError, Latchkey, require_account};
use crate::domain::DomainError;
use crate::domain::credential::{CredentialSpec, Owner};
use crate::domain::event::Actor;
use crate::domain::id::{AccountId, BotId, RoleId, TenantId};
use crate::domain::name::unique_key;
use crate::domain::ssh::SshPublicKey;
use crate::domain::tenancy;
use crate::domain::user::{Email, Roles};
use crate::store::{Reads, WriteTx};

/// One line of an import file.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
enum Record {
    /// A new member (a new user, or an existing user of the appliance who is not yet a
    /// member would be refused, as `POST /users` refuses: they join by invitation).
    User {
        email: String,
        name: String,
        #[serde(default)]
        roles: Roles,
    },
    /// A bot user.
    Bot {
        name: String,
        #[serde(default = "active")]
        active: bool,
    },
    /// A tenant.
    Tenant {
        name: String,
        #[serde(default)]
        description: String,
    },
    /// A custom role.
    Role {
        name: String,
        #[serde(default)]
        description: String,
        permissions: Vec<String>,
    },
    /// A role assignment of a member (`user`: its email) or a bot (`bot`: its name), in
    /// tenant `tenant` (its name) or, without one, in all tenants.
    Assignment {
        #[serde(default)]
        user: Option<String>,
        #[serde(default)]
        bot: Option<String>,
        role: String,
        #[serde(default)]
        tenant: Option<String>,
    },
    /// An SSH public key of a member or a bot.
    SshKey {
        #[serde(default)]
        user: Option<String>,
        #[serde(default)]
        bot: Option<String>,
        public_key: String,
        #[serde(default)]
        description: String,
    },
}

fn active() -> bool {
    true
}

/// What an import did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ImportReport {
    /// Lines applied (blank lines are skipped and not counted).
    pub records: usize,
    /// Per record type, how many were applied.
    pub by_type: Vec<(&'static str, usize)>,
    /// Transactions committed.
    pub batches: usize,
}

/// Why an import stopped.
#[derive(Debug)]
pub struct ImportFailure {
    /// The 1-based line that failed (0 when reading the input failed before any line).
    pub line: usize,
    /// Records committed before it (whole batches).
    pub imported: usize,
    /// What was wrong.
    pub error: AppError,
}

/// What the committed batches did, and the names they know.
#[derive(Debug, Default)]
struct Progress {
    report: ImportReport,
    counts: HashMap<&'static str, usize>,
    names: Option<Names>,
}

/// A failure on line `.0` (0: not on a line: storage, or the account itself).
struct LineError(usize, AppError);

impl From<AppError> for LineError {
    fn from(error: AppError) -> Self {
        LineError(0, error)
    }
}

impl From<crate::store::StoreError> for LineError {
    fn from(error: crate::store::StoreError) -> Self {
        LineError(0, error.into())
    }
}

/// Names the account already holds or earlier lines made, keyed as the store keeps
/// names unique (case- and normalization-folded).
#[derive(Debug, Default)]
struct Names {
    bots: HashMap<String, Option<BotId>>,
    tenants: HashMap<String, TenantId>,
    roles: HashMap<String, RoleId>,
}

impl Names {
    fn load(tx: &WriteTx, account: AccountId) -> Result<Names, crate::store::StoreError> {
        let mut names = Names::default();
        for bot in tx.bots(account)? {
            names.add_bot(&bot.name, bot.id);
        }
        for tenant in tx.tenants(account)? {
            names.tenants.insert(unique_key(&tenant.name), tenant.id);
        }
        for (id, name, _) in tenancy::builtin_roles() {
            names.roles.insert(unique_key(name), id);
        }
        for role in tx.custom_roles(account)? {
            names.roles.insert(unique_key(&role.name), role.id);
        }
        Ok(names)
    }

    /// Bot names need not be unique: a name two bots share resolves to neither.
    fn add_bot(&mut self, name: &str, id: BotId) {
        self.bots
            .entry(unique_key(name))
            .and_modify(|known| *known = None)
            .or_insert(Some(id));
    }
}

impl Latchkey {
    /// Apply the JSON lines of `input` to `account`, `batch` lines per transaction.
    pub fn import_jsonl(
        &self,
        account: AccountId,
        input: impl BufRead,
        batch: usize,
    ) -> Result<ImportReport, ImportFailure> {
        let mut progress = Progress::default();
        let mut pending: Vec<(usize, Record)> = Vec::new();
        for (index, line) in input.lines().enumerate() {
            let number = index + 1;
            let fail = |error| ImportFailure {
                line: number,
                imported: progress.report.records,
                error,
            };
            let line = line.map_err(|e| fail(AppError::DataDir(format!("reading: {e}"))))?;
            if line.trim().is_empty() {
                continue;
            }
            let record = serde_json::from_str::<Record>(&line)
                .map_err(|e| fail(DomainError::invalid("record", e.to_string()).into()))?;
            pending.push((number, record));
            if pending.len() >= batch.max(1) {
                self.commit_batch(account, &mut pending, &mut progress)?;
            }
        }
        if !pending.is_empty() {
            self.commit_batch(account, &mut pending, &mut progress)?;
        }
        let mut report = progress.report;
        report.by_type = progress.counts.into_iter().collect();
        report.by_type.sort_unstable();
        Ok(report)
    }

    /// Apply `pending` in one transaction and empty it; the names it made are kept only
    /// once it commits.
    fn commit_batch(
        &self,
        account: AccountId,
        pending: &mut Vec<(usize, Record)>,
        progress: &mut Progress,
    ) -> Result<(), ImportFailure> {
        let now = self.now();
        let known = progress.names.take();
        let names = self
            .store
            .write(|tx| {
                let mut names = match known {
                    Some(known) => known,
                    None => Names::load(tx, account)?,
                };
                require_account(tx, account)?;
                for (number, record) in pending.iter() {
                    self.apply(tx, account, &mut names, record, now)
                        .map_err(|e| LineError(*number, e))?;
                }
                Ok::<_, LineError>(names)
            })
            .map_err(|LineError(line, error)| ImportFailure {
                // A failure outside any line (storage) is put on the batch's first.
                line: if line == 0 {
                    pending.first().map_or(0, |(n, _)| *n)
                } else {
                    line
                },
                imported: progress.report.records,
                error,
            })?;
        progress.names = Some(names);
        for (_, record) in pending.iter() {
            *progress.counts.entry(record.kind()).or_default() += 1;
        }
        progress.report.records += pending.len();
        progress.report.batches += 1;
        pending.clear();
        Ok(())
    }

    fn apply(
        &self,
        tx: &mut WriteTx,
        account: AccountId,
        names: &mut Names,
        record: &Record,
        now: crate::domain::time::Timestamp,
    ) -> Result<(), AppError> {
        let actor = Actor::SYSTEM;
        match record {
            Record::User { email, name, roles } => {
                let email = Email::parse(email)?;
                self.add_member_in(tx, actor, account, &email, name, *roles, now)?;
            }
            Record::Bot { name, active } => {
                let bot = self.create_bot_in(tx, actor, account, name, *active, now)?;
                names.add_bot(&bot.name, bot.id);
            }
            Record::Tenant { name, description } => {
                let tenant = self.create_tenant_in(tx, actor, account, name, description, now)?;
                names.tenants.insert(unique_key(&tenant.name), tenant.id);
            }
            Record::Role {
                name,
                description,
                permissions,
            } => {
                let role =
                    self.create_role_in(tx, actor, account, name, description, permissions, now)?;
                names.roles.insert(unique_key(&role.name), role.id);
            }
            Record::Assignment {
                user,
                bot,
                role,
                tenant,
            } => {
                let principal = owner(tx, account, names, user, bot)?;
                let role = *names
                    .roles
                    .get(&unique_key(role))
                    .ok_or_else(|| not_found("role", role))?;
                let tenant = tenant
                    .as_deref()
                    .map(|t| {
                        names
                            .tenants
                            .get(&unique_key(t))
                            .copied()
                            .ok_or_else(|| not_found("tenant", t))
                    })
                    .transpose()?;
                self.insert_assignment(tx, actor, account, (principal, role, tenant), now)?;
            }
            Record::SshKey {
                user,
                bot,
                public_key,
                description,
            } => {
                let owner = owner(tx, account, names, user, bot)?;
                let key = SshPublicKey::parse(public_key)
                    .map_err(|e| DomainError::invalid("public_key", e.to_string()))?;
                let spec = CredentialSpec {
                    description: description.clone(),
                    ..CredentialSpec::default()
                };
                self.create_ssh_credential_in(tx, actor, account, owner, key, spec, now)?;
            }
        }
        Ok(())
    }
}

impl Record {
    fn kind(&self) -> &'static str {
        match self {
            Record::User { .. } => "user",
            Record::Bot { .. } => "bot",
            Record::Tenant { .. } => "tenant",
            Record::Role { .. } => "role",
            Record::Assignment { .. } => "assignment",
            Record::SshKey { .. } => "ssh_key",
        }
    }
}

/// The member (by email) or bot (by name) a record names: exactly one of the two.
fn owner(
    tx: &WriteTx,
    account: AccountId,
    names: &Names,
    user: &Option<String>,
    bot: &Option<String>,
) -> Result<Owner, AppError> {
    match (user, bot) {
        (Some(email), None) => {
            let user = tx
                .user_by_email(&Email::parse(email)?)?
                .ok_or_else(|| not_found("member", email))?;
            if tx.membership(account, user.id)?.is_none() {
                return Err(not_found("member", email));
            }
            Ok(Owner::User(user.id))
        }
        (None, Some(name)) => match names.bots.get(&unique_key(name)) {
            Some(Some(id)) => Ok(Owner::Bot(*id)),
            Some(None) => Err(DomainError::invalid(
                "bot",
                format!("several bot users are named {name:?}"),
            )
            .into()),
            None => Err(not_found("bot user", name)),
        },
        _ => Err(
            DomainError::invalid("user", "name exactly one of `user` (an email) and `bot`").into(),
        ),
    }
}

fn not_found(what: &str, name: &str) -> AppError {
    DomainError::invalid(
        "record",
        format!("no {what} {name:?} in the account or earlier in the file"),
    )
    .into()
}
