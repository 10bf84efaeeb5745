//! Integration tests: every test opens a real redb file in a temporary directory through
//! the public API (or runs the real binary), and checks the store after each refusal.

// Test code: a failed unwrap is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod api;
mod audit;
mod authoring;
mod authorization;
mod bots;
mod browser;
mod cli;
mod console;
mod credentials;
mod destinations;
mod faults;
mod group_mappings;
mod invitations;
mod isolation;
mod login;
mod members;
mod operations;
mod passkeys;
mod persistence;
mod policies;
mod scim;
mod sso;
mod support;
mod tenancy;
mod verify;
mod web;
