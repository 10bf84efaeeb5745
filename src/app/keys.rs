//! Server key rotation (`latchkey key rotate`, the host operator's, through the admin
//! socket): a new key version hashes and seals everything made from then on; the older
//! keys stay in the keyring, so tokens, sessions and links made under them keep working
//! until they are rotated or expire, and the sealed secrets (TOTP seeds, invitation
//! tokens, event destinations' and identity providers' secrets) are re-sealed under the new key at once.

use std::sync::{Arc, PoisonError};

use super::mfa::{Sealed, seal_under, unseal_under};
use super::{AppError, Latchkey, fingerprints, key_fingerprint};

/// What a rotation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRotation {
    /// The new key's version, which signs and seals from now on.
    pub version: u32,
    /// Every version in the keyring now, ascending.
    pub versions: Vec<u32>,
    /// TOTP seeds re-sealed under the new key.
    pub resealed_totp: usize,
    /// Invitation tokens re-sealed under the new key.
    pub resealed_invitations: usize,
    /// Event destinations' signing secrets re-sealed under the new key.
    pub resealed_destination_secrets: usize,
    /// Identity providers' client secrets re-sealed under the new key.
    pub resealed_provider_secrets: usize,
}

impl Latchkey {
    /// Rotate the server key. The keyring file is rewritten first (atomically, so a
    /// crash leaves the old file or the new one), then the database records the new
    /// key's fingerprint and re-seals every TOTP seed, invitation token and destination
    /// secret under it in
    /// one transaction, then the new keyring takes over. A `server.key` changed on disk
    /// since the server started is refused: the file must hold the keys in use.
    pub fn rotate_key(&self) -> Result<KeyRotation, AppError> {
        let _one = self.rotation.lock().unwrap_or_else(PoisonError::into_inner);
        let current = self.keys.load();
        let mut keys = self.data_dir.server_keys(false)?;
        let mut on_disk = fingerprints(&keys.keyring()?);
        let mut in_use = fingerprints(&current);
        on_disk.sort_unstable();
        in_use.sort_unstable();
        if on_disk != in_use {
            return Err(AppError::DataDir(
                "server.key on disk is not the keyring this server runs with (was it edited or replaced?); restart the server on the right file, then rotate".into(),
            ));
        }
        let version = keys.add_new()?;
        let next = keys.keyring()?;
        self.data_dir.write_server_keys(&keys)?;
        let fingerprint = key_fingerprint(next.current());
        let (
            resealed_totp,
            resealed_invitations,
            resealed_destination_secrets,
            resealed_provider_secrets,
        ) = self.store.write(|tx| {
            tx.set_key_fingerprint(version, fingerprint)?;
            let mut totp = 0;
            for (user, mut record) in tx.all_totp()? {
                let seed = unseal_under(&current, Sealed::TotpSeed, &record.sealed_seed)?;
                record.sealed_seed = seal_under(next.current(), Sealed::TotpSeed, &seed)?;
                tx.put_totp(user, &record)?;
                totp += 1;
            }
            let mut invitations = 0;
            for mut invitation in tx.all_invitations()? {
                let token =
                    unseal_under(&current, Sealed::InvitationToken, &invitation.sealed_token)?;
                invitation.sealed_token =
                    seal_under(next.current(), Sealed::InvitationToken, &token)?;
                tx.put_invitation(&invitation)?;
                invitations += 1;
            }
            let mut secrets = 0;
            for (id, sealed) in tx.all_destination_secrets()? {
                let secret = unseal_under(&current, Sealed::DestinationSecret, &sealed)?;
                let resealed = seal_under(next.current(), Sealed::DestinationSecret, &secret)?;
                tx.put_destination_secret(id, &resealed)?;
                secrets += 1;
            }
            let mut providers = 0;
            for (id, sealed) in tx.all_identity_provider_secrets()? {
                let secret = unseal_under(&current, Sealed::ProviderSecret, &sealed)?;
                let resealed = seal_under(next.current(), Sealed::ProviderSecret, &secret)?;
                tx.put_identity_provider_secret(id, &resealed)?;
                providers += 1;
            }
            Ok::<_, AppError>((totp, invitations, secrets, providers))
        })?;
        self.keys.store(Arc::new(next));
        tracing::info!(
            version,
            resealed_totp,
            resealed_invitations,
            resealed_destination_secrets,
            resealed_provider_secrets,
            "server key rotated by the operator"
        );
        Ok(KeyRotation {
            version,
            versions: keys.versions(),
            resealed_totp,
            resealed_invitations,
            resealed_destination_secrets,
            resealed_provider_secrets,
        })
    }
}
