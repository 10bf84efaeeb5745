//! latchkey: a self-hosted identity and access appliance in one binary.
//!
//! Layers, each in one module, dependencies pointing one way (`cli` → `app` → `store`, `domain`):
//! - [`domain`]: the pure model and its rules: accounts, users, memberships, bot users,
//!   credentials, token format, audit events. No I/O, no database types.
//! - [`store`]: the only module that imports redb. Versioned postcard records, secondary
//!   indexes, the audit hash chain, and the in-memory credential index kept in step with
//!   every commit.
//! - [`app`]: the composition root. Opens a data directory, runs every management
//!   operation as one store transaction (rules, change, audit event), and verifies
//!   credentials.
//! - [`policy`]: the only module that imports wasmtime. Loads WASM policy modules and
//!   their manifests, runs them sandboxed (fuel, memory limits, no imports), routes actions
//!   to them and combines their answers, failing closed.
//! - [`scaffold`]: `latchkey policy new`, a standalone policy crate with the SDK embedded.
//! - [`api`]: the HTTP API over `app`: routing, bearer authentication, bodies, lists and
//!   the error shape.
//! - [`server`]: `latchkey serve`: TLS (rustls), HTTP/1.1 and HTTP/2 (hyper), signals.
//! - [`cli`]: the command line on top of `app` and `server`.

pub mod api;
pub mod app;
pub mod cli;
pub mod domain;
pub mod policy;
pub mod scaffold;
pub mod scim;
pub mod server;
pub mod store;
pub mod web;
