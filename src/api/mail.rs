//! Invitation mail over SMTP (lettre), when the operator configures it. Nothing depends
//! on it: the outbox (`GET /invitations/{id}`) always has the link, and a failed send is
//! logged without the link.

use lettre::message::Mailbox;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

/// Where invitations are sent from, and through what.
#[derive(Debug)]
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl Mailer {
    /// A mailer for `url` (`smtp://host:port` plain, `smtp://host?tls=required` with
    /// STARTTLS, `smtps://host` with TLS; credentials as `user:password@`), sending as
    /// `from`. Errors name the setting.
    pub fn new(url: &str, from: &str) -> Result<Mailer, String> {
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .map_err(|e| format!("smtp_url: {e}"))?
            .build();
        let from = from
            .parse()
            .map_err(|e| format!("mail_from: {from:?} is not a mailbox: {e}"))?;
        Ok(Mailer { transport, from })
    }

    /// Send a one-time link of kind `mail` to `to`, in the background. The link is in the
    /// message only: never in the log, whether the send works or fails.
    pub fn send_link(&self, to: &str, mail: Mail, url: &str, expires_at: &str) {
        let (subject, opening) = mail.text();
        let message = to
            .parse::<Mailbox>()
            .map_err(|e| e.to_string())
            .and_then(|to| {
                Message::builder()
                    .from(self.from.clone())
                    .to(to)
                    .subject(subject)
                    .body(format!(
                        "{opening}\r\n\r\n{url}\r\n\r\n\
                         The link works once, until {expires_at}. If you did not expect \
                         this message, ignore it: nothing changes unless the link is used.\r\n"
                    ))
                    .map_err(|e| e.to_string())
            });
        let what = mail.name();
        match message {
            Ok(message) => {
                let transport = self.transport.clone();
                tokio::spawn(async move {
                    match transport.send(message).await {
                        Ok(_) => tracing::info!(mail = what, "mail sent"),
                        Err(err) => tracing::warn!(mail = what, error = %err, "mail failed"),
                    }
                });
            }
            Err(err) => tracing::warn!(mail = what, error = %err, "mail not built"),
        }
    }
}

/// The kinds of mail latchkey sends, each carrying one one-time link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mail {
    /// An invitation to join an account (the link also stays in the outbox).
    Invitation,
    /// A password reset the user asked for (the link goes nowhere else).
    PasswordReset,
    /// A proof of the user's address (the link goes nowhere else).
    EmailProof,
}

impl Mail {
    fn text(self) -> (&'static str, &'static str) {
        match self {
            Mail::Invitation => (
                "You are invited to a latchkey account",
                "You have been invited to join a latchkey account. Accept the invitation:",
            ),
            Mail::PasswordReset => (
                "Reset your latchkey password",
                "Someone (we hope you) asked to reset the password of the latchkey user with \
                 this address. Choose a new password:",
            ),
            Mail::EmailProof => (
                "Confirm your email address for latchkey",
                "Confirm that this address is yours, so that your latchkey user can join \
                 the accounts that invite it:",
            ),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Mail::Invitation => "invitation",
            Mail::PasswordReset => "password reset",
            Mail::EmailProof => "email proof",
        }
    }
}
