//! The pure model of latchkey and every rule it must keep.
//!
//! Nothing here performs I/O, blocks or knows about redb, wasmtime or HTTP: functions take
//! the state they judge and return the new state or a [`DomainError`]. The store and the
//! application layer decide *where* state lives; this module decides *what is allowed*.

pub mod account;
pub mod acl;
pub mod action;
pub mod bot;
pub mod credential;
pub mod destination;
mod error;
pub mod event;
pub mod federation;
pub mod grant;
pub mod id;
pub mod invitation;
pub mod ip;
pub mod name;
pub mod saml_metadata;
pub mod scim;
pub mod session;
pub mod ssh;
pub mod tenancy;
pub mod time;
pub mod token;
pub mod user;

pub use error::DomainError;
