//! Credentials: owners, validation, SSH keys, expiry, last use.

use latchkey::domain::DomainError;
use latchkey::domain::credential::{
    CredentialKind, CredentialPatch, CredentialSpec, Owner, Rejection,
};
use latchkey::domain::time::Timestamp;
use latchkey::domain::token::TokenKind;
use latchkey::domain::user::Roles;

use crate::support::{Fixture, START, is_valid, refusal, rejection};

pub const ED25519: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGMwccBUhuf3kM8yUti5/51nnWz3mwMefrlipBvfjPgO alice@example.com";
pub const RSA1024: &str = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQDUR0n0zUfLZyo0nzHSNHH6viPdG6LjRC9LyyHiwy1MEU8FUcAM2Fl6nHNsXDvxo78trOVFvl1DfjzsA2k42f1lYD3iZ/VAmSA4duE/L/K556GuVPK5nkUjYHtkaLRTTqsHbg9VHVy6I4ovvL9I0HIdvLey/DWT+u+f2dqzCxtITw== rsa1024";
const DSA: &str = "ssh-dss AAAAB3NzaC1kc3MAAACBAImn1inalUsc0gGb4d2LUm+yprsCCo+M1w8BTHqk/y7mgHGoXkG5D50rpTfcC1jhdZa7imSKAbUcIoI3B0vYUH38NY45bWH+mfttbMTJ4VpP9U50aVFhWVS/wS4HzJALcn5OYqxQRlFljA9XZcETeM7DW21BfxITP6lq5efa1kw5AAAAFQD0QI3GORms+1jQpRfMAxY8zsCbcwAAAIEAgCeAHRjoRtL28UHm5+jsIbbngesV8LKbkWqV5AnuvSG/rsuyx4J+OArnBw1KsU2ip7ix7A7E5NQqpZCHXAMDa4IMpmFmfi0VPSOLtUNMHE+KzkcrTXkz8qkCq8Kg9Ph9X9nRUUKjeBb5ZjXPRehQ8LTNVOL2F+WyO6dYMr9avGgAAACAdNllHy/R0KSFftnAVmN6dSuuidEwQld7J6UWyFi4JImhSyuz5uDyOjSEBMMCIgN9QHCOuJLtMfDGzVmrIeF7mPoF1bPWdDKv7FqAH8cJGbKGVpWUUQUBl/pLiW7QfQubgMGVD5W01HFpkfEyyNRavT6uhCi15SM3898aNHRToVI= dsa";

fn spec() -> CredentialSpec {
    CredentialSpec::default()
}

#[test]
fn the_owner_is_fixed_at_creation_and_updates_keep_it() {
    let fx = Fixture::new();
    let (dana, _) = fx.member("dana@example.com", Roles::default());
    let (id, key) = fx.api_key(Owner::User(dana.id));
    let patch = CredentialPatch {
        description: Some("build".into()),
        metadata: Some("{\"team\":1}".into()),
        ..Default::default()
    };
    let updated = fx
        .lk
        .update_credential(fx.admin_actor(), fx.account(), id, &patch)
        .unwrap();
    assert_eq!(updated.owner, Owner::User(dana.id));
    assert_eq!(
        (updated.description.as_str(), updated.metadata.as_str()),
        ("build", "{\"team\":1}")
    );
    assert_eq!(
        fx.lk.verify(key.expose()).unwrap().owner,
        Owner::User(dana.id)
    );
}

#[test]
fn an_owner_outside_the_account_is_refused_and_nothing_changes() {
    let fx = Fixture::new();
    let other = fx.lk.init("globex", "g@example.com").unwrap();
    let before = fx.state();
    let result = fx.lk.create_token_credential(
        fx.admin_actor(),
        fx.account(),
        TokenKind::ApiKey,
        Owner::User(other.user.id),
        spec(),
    );
    assert!(matches!(refusal(result), DomainError::NotFound(_)));
    assert_eq!(fx.state(), before);
}

#[test]
fn bind_rules_are_validated_and_returned_on_verify() {
    let fx = Fixture::new();
    let owner = Owner::User(fx.admin().id);
    let before = fx.state();
    let bad = CredentialSpec {
        acl: vec!["bind:a.*.example.com".into()],
        ..spec()
    };
    let err = refusal(fx.lk.create_token_credential(
        fx.admin_actor(),
        fx.account(),
        TokenKind::Authtoken,
        owner,
        bad,
    ));
    assert!(
        matches!(err, DomainError::Invalid { field: "acl", .. }),
        "{err:?}"
    );
    let on_api_key = CredentialSpec {
        acl: vec!["bind:*.example.com".into()],
        ..spec()
    };
    let err = refusal(fx.lk.create_token_credential(
        fx.admin_actor(),
        fx.account(),
        TokenKind::ApiKey,
        owner,
        on_api_key,
    ));
    assert!(matches!(err, DomainError::Invalid { field: "acl", .. }));
    assert_eq!(fx.state(), before);

    let good = CredentialSpec {
        acl: vec!["bind:*.Example.com".into(), "bind:region=eu".into()],
        ..spec()
    };
    let (credential, token) = fx
        .lk
        .create_token_credential(
            fx.admin_actor(),
            fx.account(),
            TokenKind::Authtoken,
            owner,
            good,
        )
        .unwrap();
    let acl = fx
        .lk
        .verify(token.expose())
        .unwrap()
        .acl
        .expect("restricted");
    assert_eq!(acl.rules(), ["bind:*.example.com", "bind:region=eu"]);

    let patch = CredentialPatch {
        acl: Some(vec!["listen:*".into()]),
        ..Default::default()
    };
    let unchanged = fx.state();
    assert!(
        refusal(
            fx.lk
                .update_credential(fx.admin_actor(), fx.account(), credential.id, &patch)
        )
        .to_string()
        .contains("acl")
    );
    assert_eq!(fx.state(), unchanged);
}

#[test]
fn description_and_metadata_limits_are_enforced() {
    let fx = Fixture::new();
    let owner = Owner::User(fx.admin().id);
    let before = fx.state();
    for (bad, field) in [
        (
            CredentialSpec {
                description: "d".repeat(256),
                ..spec()
            },
            "description",
        ),
        (
            CredentialSpec {
                metadata: "m".repeat(4097),
                ..spec()
            },
            "metadata",
        ),
        (
            CredentialSpec {
                expires_at: Some(Timestamp::from_millis(START - 1)),
                ..spec()
            },
            "expires_at",
        ),
    ] {
        let err = refusal(fx.lk.create_token_credential(
            fx.admin_actor(),
            fx.account(),
            TokenKind::ApiKey,
            owner,
            bad,
        ));
        assert!(
            matches!(err, DomainError::Invalid { field: f, .. } if f == field),
            "{err:?}"
        );
    }
    assert_eq!(fx.state(), before);
}

#[test]
fn an_expired_credential_no_longer_verifies() {
    let fx = Fixture::new();
    let expiring = CredentialSpec {
        expires_at: Some(Timestamp::from_millis(START + 60_000)),
        ..spec()
    };
    let (_, key) = fx
        .lk
        .create_token_credential(
            fx.admin_actor(),
            fx.account(),
            TokenKind::ApiKey,
            Owner::User(fx.admin().id),
            expiring,
        )
        .unwrap();
    assert_eq!(
        fx.lk.verify(key.expose()).unwrap().expires_at,
        Some(Timestamp::from_millis(START + 60_000))
    );
    fx.clock.advance(59_999);
    assert!(is_valid(&fx.lk, &key));
    fx.clock.advance(1);
    assert_eq!(rejection(&fx.lk, &key), Rejection::Expired);
}

#[test]
fn ssh_keys_are_validated_and_unique_across_the_appliance() {
    let fx = Fixture::new();
    let owner = Owner::User(fx.admin().id);
    let credential = fx
        .lk
        .create_ssh_credential(fx.admin_actor(), fx.account(), owner, ED25519, spec())
        .unwrap();
    assert_eq!(credential.id.kind, CredentialKind::SshKey);
    assert_eq!(fx.lk.verify(ED25519).unwrap().credential, credential.id);

    // The same key with another comment, in another account, is still the same key.
    let other = fx.lk.init("globex", "g@example.com").unwrap();
    let before = fx.state();
    let same_key = ED25519.replace("alice@example.com", "bob@laptop");
    let err = refusal(fx.lk.create_ssh_credential(
        fx.actor(&other.api_key),
        other.account.id,
        Owner::User(other.user.id),
        &same_key,
        spec(),
    ));
    assert!(matches!(err, DomainError::Conflict { .. }), "{err:?}");
    for weak in [RSA1024, DSA, "ssh-ed25519 AAAA", "not a key", ""] {
        let err = refusal(fx.lk.create_ssh_credential(
            fx.admin_actor(),
            fx.account(),
            owner,
            weak,
            spec(),
        ));
        assert!(
            matches!(
                err,
                DomainError::Invalid {
                    field: "public_key",
                    ..
                }
            ),
            "{weak}: {err:?}"
        );
    }
    assert_eq!(fx.state(), before);

    // Once deleted, the key verifies no more and may be registered again.
    fx.lk
        .delete_credential(fx.admin_actor(), fx.account(), credential.id)
        .unwrap();
    assert_eq!(fx.lk.verify(ED25519).unwrap_err(), Rejection::Unknown);
    let again = fx
        .lk
        .create_ssh_credential(
            fx.actor(&other.api_key),
            other.account.id,
            Owner::User(other.user.id),
            &same_key,
            spec(),
        )
        .unwrap();
    assert_eq!(fx.lk.verify(ED25519).unwrap().account, other.account.id);
    assert!(
        refusal(
            fx.lk
                .rotate_credential(fx.actor(&other.api_key), other.account.id, again.id)
        )
        .to_string()
        .contains("SSH")
    );
}

#[test]
fn credentials_of_another_account_are_not_found() {
    let fx = Fixture::new();
    let other = fx.lk.init("globex", "g@example.com").unwrap();
    let (id, key) = fx.api_key(Owner::User(fx.admin().id));
    let globex = fx.actor(&other.api_key);
    let before = fx.state();
    assert!(matches!(
        refusal(fx.lk.credential(globex, other.account.id, id)),
        DomainError::NotFound(_)
    ));
    assert!(matches!(
        refusal(fx.lk.delete_credential(globex, other.account.id, id)),
        DomainError::NotFound(_)
    ));
    assert!(matches!(
        refusal(fx.lk.rotate_credential(globex, other.account.id, id)),
        DomainError::NotFound(_)
    ));
    assert_eq!(fx.state(), before);
    assert!(is_valid(&fx.lk, &key));
}

#[test]
fn last_use_is_recorded_in_memory_and_flushed_in_one_batch() {
    let fx = Fixture::new();
    let (id, key) = fx.api_key(Owner::User(fx.admin().id));
    let (id2, key2) = fx.api_key(Owner::User(fx.admin().id));
    assert_eq!(fx.lk.last_used(id).unwrap(), None);
    // Flushes write uses at or after the previous flush began (a use in that same
    // millisecond may be written twice, never lost), so let the clock move as it would.
    fx.clock.advance(1);
    fx.lk.flush_usage().unwrap();
    let audit_before = fx.state();
    fx.clock.advance(999);
    for _ in 0..1000 {
        fx.lk.verify(key.expose()).unwrap();
    }
    fx.clock.advance(5_000);
    fx.lk.verify(key2.expose()).unwrap();
    assert_eq!(
        fx.lk.last_used(id).unwrap(),
        Some(Timestamp::from_millis(START + 1_000))
    );
    assert_eq!(
        fx.lk.last_used(id2).unwrap(),
        Some(Timestamp::from_millis(START + 6_000))
    );
    fx.clock.advance(1);
    assert_eq!(
        fx.lk.flush_usage().unwrap(),
        2,
        "one row per used credential, not per lookup"
    );
    fx.clock.advance(1);
    assert_eq!(fx.lk.flush_usage().unwrap(), 0, "nothing new to write");
    assert_eq!(
        fx.state(),
        audit_before,
        "usage is a signal, not an audited change"
    );
    // Flushed values survive a restart.
    let fx = fx.reopen();
    assert_eq!(
        fx.lk.last_used(id2).unwrap(),
        Some(Timestamp::from_millis(START + 6_000))
    );
}
