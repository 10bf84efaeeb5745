//! The latchkey policy SDK: write a policy as plain Rust, export it as an ABI v1 module.
//!
//! Implement [`Policy`] on a unit struct, call [`export_policy!`] once, and build the
//! crate for `wasm32-unknown-unknown`; natively the same code is unit-testable as is.
//! Helpers here ([`action_matches`], [`scopes_allow`]) are the ones both built-ins share.
//!
//! # Writing a policy
//!
//! ```
//! #![no_std]
//! extern crate alloc;
//! use latchkey_policy_sdk::{export_policy, Decision, Policy, Request};
//!
//! /// Refuses every `reports.*` action.
//! pub struct NoReports;
//!
//! impl Policy for NoReports {
//!     fn decide(request: &Request) -> Decision {
//!         if latchkey_policy_sdk::action_matches("reports.*", &request.action) {
//!             Decision::deny("reports are switched off")
//!         } else {
//!             Decision::not_applicable("not a report")
//!         }
//!     }
//! }
//!
//! export_policy!(NoReports);
//! # fn main() {}
//! ```
//!
//! # `no_std` and panics
//!
//! Policy crates are `#![no_std]` (with `alloc`): on wasm32 the SDK links no `std`, so a
//! module carries no WASI or host imports, and the SDK supplies the `#[panic_handler]`,
//! which traps (the host then fails closed). Natively the SDK links `std` so the same
//! `no_std` crate builds and runs its tests with std's panic handler. The handler lives in
//! the SDK rather than in [`export_policy!`] because only the SDK knows whether it links
//! `std` (its test-only `cases` feature does). A crate that wants `std` on wasm32 cannot
//! use the SDK there: two panic handlers would clash, and std on `wasm32-unknown-unknown`
//! buys nothing a policy can use.

#![no_std]
#![deny(missing_docs)]

extern crate alloc;
// Natively, std provides the panic handler and unwinding runtime that a `no_std` policy
// cdylib needs to link (for `cargo build --workspace` and tests); on wasm32 the macro
// provides a trapping panic handler instead, and nothing from std is linked (the `cases`
// feature, which reads JSON with std, is for native test builds only).
#[cfg(any(not(target_arch = "wasm32"), feature = "cases"))]
extern crate std;

mod actions;
#[cfg(feature = "cases")]
pub mod cases;
#[cfg(target_arch = "wasm32")]
mod guest;

pub use actions::{action_matches, first_uncovered, pattern_covers, scope_denial, scopes_allow};
pub use latchkey_policy_abi as abi;
// A policy reads the request through the ABI's borrowed view: its strings point into the
// encoded request, so decoding copies none of them.
pub use latchkey_policy_abi::view::{
    Assignment, Context, CredentialInfo, Principal, Request, Resource,
};
pub use latchkey_policy_abi::{
    ABI_VERSION, AccountRoles, BUILTIN_CATALOG, BUILTIN_ROLES, Billing, CredentialKind, Decision,
    Developer, GLOBAL_ADMINISTRATOR, IpAddress, Mfa, Outcome, PrincipalKind, READ_ONLY, RoleScope,
    SELF_SERVICE, TECHNICIAN, TENANT_ADMINISTRATOR, Team, builtin_permission, builtin_role_grants,
    builtin_role_scope,
};

/// Join `parts` into one reason string with a single allocation.
///
/// `format!` works in a policy, but `core::fmt` is slow in WASM (it dominated the built-in
/// policies' decision time); on a path every request takes, build the reason with this:
///
/// ```
/// let who = "developer read_write";
/// assert_eq!(
///     latchkey_policy_sdk::concat(&[who, " may create ", "api_keys"]),
///     "developer read_write may create api_keys"
/// );
/// ```
pub fn concat(parts: &[&str]) -> alloc::string::String {
    let mut out = alloc::string::String::with_capacity(parts.iter().map(|p| p.len()).sum());
    for part in parts {
        out.push_str(part);
    }
    out
}

/// Whether `a` and `b` are the same string, compared eight bytes at a time.
///
/// `==` on strings is right everywhere, but on wasm32 it calls the toolchain's `memcmp`,
/// which compares a byte per step: under the host's fuel metering a 26-byte tenant id
/// costs about 590 instructions that way and about 60 this way. Use it where a policy
/// compares identifiers (accounts, tenants, owners) on every decision.
///
/// ```
/// use latchkey_policy_sdk::same;
/// assert!(same("tnt_0352CHaAAk2xHzkECETRb2", "tnt_0352CHaAAk2xHzkECETRb2"));
/// assert!(!same("tnt_0352CHaAAk2xHzkECETRb2", "tnt_0352CHaAAk2xHzkECETRb3"));
/// assert!(!same("ac_1", "ac_12"));
/// ```
pub fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let (mut words_a, mut words_b) = (a.chunks_exact(8), b.chunks_exact(8));
    // Compared as integers: comparing the slices themselves would call `memcmp` again.
    let word = |w: &[u8]| u64::from_le_bytes(w.try_into().unwrap_or([0; 8]));
    (&mut words_a)
        .zip(&mut words_b)
        .all(|(x, y)| word(x) == word(y))
        && words_a
            .remainder()
            .iter()
            .zip(words_b.remainder())
            .all(|(x, y)| x == y)
}

/// A policy: one pure function from a request to a decision.
///
/// It sees nothing but the request: no clock (use `request.context.time_ms`), no I/O, and
/// no memory of earlier calls (the host resets the guest's heap between decisions), so
/// the same request always gets the same decision.
pub trait Policy {
    /// Decide `request`: [`Decision::allow`], [`Decision::deny`], or
    /// [`Decision::not_applicable`] when the request is outside what this policy judges.
    /// The reason is shown to operators and in `403` answers; make it a short sentence.
    fn decide(request: &Request<'_>) -> Decision;
}

/// Export `$policy` (a type implementing [`Policy`]) as an ABI v1 module.
///
/// On `target_arch = "wasm32"` this emits the four exports of
/// [`abi::exports`] (`lk_abi_version`, `lk_alloc`, `lk_evaluate`, `lk_reset`), a bump
/// `#[global_allocator]` over the module's linear memory that `lk_reset` empties (the
/// trapping `#[panic_handler]` comes with the SDK itself on wasm32). On other targets it
/// only checks that `$policy` implements [`Policy`], so native builds and tests see the
/// same errors. Invoke it once, at the root of a `#![no_std]` crate.
#[macro_export]
macro_rules! export_policy {
    ($policy:ty) => {
        const _: fn(&$crate::Request<'_>) -> $crate::Decision = <$policy as $crate::Policy>::decide;

        #[cfg(target_arch = "wasm32")]
        const _: () = {
            #[global_allocator]
            static LATCHKEY_HEAP: $crate::__private::BumpAllocator =
                $crate::__private::BumpAllocator::new();

            #[unsafe(no_mangle)]
            pub extern "C" fn lk_abi_version() -> i32 {
                $crate::__private::abi_version()
            }

            #[unsafe(no_mangle)]
            pub extern "C" fn lk_alloc(len: i32) -> i32 {
                $crate::__private::alloc(&LATCHKEY_HEAP, len)
            }

            #[unsafe(no_mangle)]
            pub extern "C" fn lk_evaluate(ptr: i32, len: i32) -> i64 {
                $crate::__private::evaluate::<$policy>(&LATCHKEY_HEAP, ptr, len)
            }

            #[unsafe(no_mangle)]
            pub extern "C" fn lk_reset() {
                LATCHKEY_HEAP.reset();
            }
        };
    };
}

/// What [`export_policy!`] expands to call; not part of the SDK's API.
#[cfg(target_arch = "wasm32")]
#[doc(hidden)]
pub mod __private {
    pub use crate::guest::{BumpAllocator, abi_version, alloc, evaluate};
}
