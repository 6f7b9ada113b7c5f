//! The mail catcher of `cargo xtask up`: where nothing listens on the SMTP relay's address, an
//! SMTP server takes the mail the email worker sends and shows one line per message.

use std::time::Duration;

use anyhow::Context as _;
use notify_testkit::smtp::{Mail, SmtpServer};

use crate::endpoint::ServiceUrl;

/// Starts the catcher on the address of `url` when that is a plain `smtp://` address on this
/// machine that nothing serves yet; otherwise says where the mail goes.
pub async fn catch(url: &ServiceUrl) -> anyhow::Result<Option<SmtpServer>> {
    let endpoint = url.endpoint(25);
    if url.scheme != "smtp" || !endpoint.is_local() {
        println!("[up] mail goes to the relay at {endpoint}");
        return Ok(None);
    }
    if endpoint.is_listening() {
        println!("[up] something listens on {endpoint} already: mail goes there");
        return Ok(None);
    }

    let addr = *endpoint
        .socket_addrs()
        .first()
        .with_context(|| format!("{endpoint} does not resolve"))?;
    let server = SmtpServer::start_on(addr)
        .await
        .with_context(|| format!("starting the mail catcher on {addr}"))?;
    println!(
        "[up] catching mail on {}: each message is shown as a [mail] line",
        server.url()
    );
    tokio::spawn(show_each(server.clone()));
    Ok(Some(server))
}

async fn show_each(server: SmtpServer) {
    let mut shown = 0;
    loop {
        // A quiet hour ends the wait without news; the next one starts where it left off.
        let Ok(mails) = server
            .wait_for_messages(shown + 1, Duration::from_secs(3600))
            .await
        else {
            continue;
        };
        for mail in &mails[shown..] {
            println!("{}", line(mail));
        }
        shown = mails.len();
    }
}

fn line(mail: &Mail) -> String {
    format!(
        "[mail] to={} subject={}",
        mail.to.join(","),
        mail.subject().unwrap_or_default()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mail_is_shown_by_its_recipients_and_subject() {
        let mail = Mail {
            from: "notify@localhost".into(),
            to: vec!["ann@example.com".into(), "bo@example.com".into()],
            raw: "Subject: Hi Ann\r\n\r\nHello\r\n".into(),
        };

        assert_eq!(
            line(&mail),
            "[mail] to=ann@example.com,bo@example.com subject=Hi Ann"
        );
    }
}
