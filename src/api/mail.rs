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

    /// Send the invitation to `to` in the background.
    pub fn send_invitation(&self, to: &str, accept_url: &str, expires_at: &str, id: &str) {
        let message = to
            .parse::<Mailbox>()
            .map_err(|e| e.to_string())
            .and_then(|to| {
                Message::builder()
                    .from(self.from.clone())
                    .to(to)
                    .subject("You are invited to a latchkey account")
                    .body(format!(
                        "You have been invited to join a latchkey account.\r\n\r\n\
                         Accept the invitation: {accept_url}\r\n\r\n\
                         The link works once, until {expires_at}. If you did not expect \
                         this invitation, ignore this message.\r\n"
                    ))
                    .map_err(|e| e.to_string())
            });
        let id = id.to_owned();
        match message {
            Ok(message) => {
                let transport = self.transport.clone();
                tokio::spawn(async move {
                    match transport.send(message).await {
                        Ok(_) => tracing::info!(invitation = %id, "invitation mail sent"),
                        Err(err) => {
                            tracing::warn!(invitation = %id, error = %err, "invitation mail failed; the link is in the outbox");
                        }
                    }
                });
            }
            Err(err) => tracing::warn!(invitation = %id, error = %err, "invitation mail not built"),
        }
    }
}
