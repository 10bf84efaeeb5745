//! "Who is this?": every rejection reason, and no stale answer after a change.

use std::sync::atomic::{AtomicBool, Ordering};

use latchkey::domain::credential::{Owner, Rejection};
use latchkey::domain::id::new_raw;
use latchkey::domain::time::Timestamp;
use latchkey::domain::token::{TokenKind, mint};
use latchkey::domain::user::{MemberState, Roles};

use crate::support::{Fixture, rejection};

#[test]
fn each_reason_is_told_apart_for_the_operator() {
    let fx = Fixture::new();
    let (id, key) = fx.api_key(Owner::User(fx.admin().id));
    let text = key.expose();
    let verify = |t: &str| fx.lk.verify(t).unwrap_err();

    assert_eq!(verify("hello"), Rejection::Malformed);
    assert_eq!(verify(""), Rejection::Malformed);
    assert_eq!(verify(&text[..text.len() - 2]), Rejection::Malformed);
    let mut flipped = text.as_bytes().to_vec();
    flipped[40] = if flipped[40] == b'a' { b'b' } else { b'a' };
    assert_eq!(
        verify(std::str::from_utf8(&flipped).unwrap()),
        Rejection::BadChecksum
    );

    let unknown = mint(
        TokenKind::ApiKey,
        new_raw(Timestamp::from_millis(1)).unwrap(),
    )
    .unwrap();
    assert_eq!(rejection(&fx.lk, &unknown), Rejection::Unknown);
    let forged = mint(TokenKind::ApiKey, id.raw).unwrap();
    assert_eq!(
        rejection(&fx.lk, &forged),
        Rejection::WrongSecret,
        "a valid checksum proves nothing"
    );
    let wrong_kind = mint(TokenKind::Authtoken, id.raw).unwrap();
    assert_eq!(rejection(&fx.lk, &wrong_kind), Rejection::Unknown);

    fx.lk
        .delete_credential(fx.admin_actor(), fx.account(), id)
        .unwrap();
    assert_eq!(rejection(&fx.lk, &key), Rejection::Revoked);
}

#[test]
fn a_revoke_or_disable_is_never_answered_stale_even_under_concurrent_lookups() {
    let fx = Fixture::new();
    let (dana, personal) = fx.member("dana@example.com", Roles::default());
    let (id, key) = fx.api_key(Owner::User(dana.id));
    let stop = AtomicBool::new(false);
    std::thread::scope(|scope| {
        // Stops the lookups however this closure ends, so a failed assertion fails the
        // test instead of leaving the scope waiting for a thread that never stops.
        let _stop_on_exit = StopOnDrop(&stop);
        let lookups = scope.spawn(|| {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let _ = fx.lk.verify(key.expose());
                n += 1;
            }
            n
        });
        fx.set_state(&dana, MemberState::Disabled);
        assert_eq!(
            rejection(&fx.lk, &key),
            Rejection::OwnerDisabled,
            "the call returned, so the change is visible"
        );
        assert_eq!(rejection(&fx.lk, &personal), Rejection::OwnerDisabled);
        fx.set_state(&dana, MemberState::Active);
        assert!(fx.lk.verify(key.expose()).is_ok());
        fx.lk
            .delete_credential(fx.admin_actor(), fx.account(), id)
            .unwrap();
        assert_eq!(rejection(&fx.lk, &key), Rejection::Revoked);
        stop.store(true, Ordering::Relaxed);
        assert!(lookups.join().unwrap() > 0);
    });
}

struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}
