//! Tests of the SMTP server through lettre, the client the platform uses, and through a raw
//! socket for the parts of the protocol lettre does not exercise.

use std::time::Duration;

use lettre::message::header::{ContentTransferEncoding, ContentType};
use lettre::message::{Body, MultiPart, SinglePart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

use super::*;

const WAIT: Duration = Duration::from_secs(10);

fn transport(server: &SmtpServer) -> AsyncSmtpTransport<Tokio1Executor> {
    AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
        .port(server.addr().port())
        .build()
}

fn greeting(to: &str) -> Message {
    Message::builder()
        .from("Notify <noreply@notify.test>".parse().unwrap())
        .to(to.parse().unwrap())
        .subject("Grüße aus Köln ✓")
        .message_id(Some("<greeting@notify.test>".to_owned()))
        .multipart(MultiPart::alternative_plain_html(
            "Hallo Jürgen,\nschöne Grüße aus Köln ✓".to_owned(),
            "<p>Hallo Jürgen,</p><p>schöne Grüße aus Köln ✓</p>".to_owned(),
        ))
        .unwrap()
}

/// A line-by-line SMTP client for checking replies exactly.
struct RawClient {
    replies: BufReader<OwnedReadHalf>,
    commands: OwnedWriteHalf,
}

impl RawClient {
    async fn connect(server: &SmtpServer) -> RawClient {
        let (replies, commands) = TcpStream::connect(server.addr())
            .await
            .unwrap()
            .into_split();
        let mut client = RawClient {
            replies: BufReader::new(replies),
            commands,
        };
        assert!(client.reply().await.starts_with("220 "));
        client
    }

    async fn send(&mut self, text: &str) {
        self.commands.write_all(text.as_bytes()).await.unwrap();
    }

    /// Reads one reply, joining the lines of a multiline reply with `\n`.
    async fn reply(&mut self) -> String {
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            self.replies.read_line(&mut line).await.unwrap();
            assert!(line.ends_with("\r\n"), "incomplete reply line {line:?}");
            let line = line.trim_end().to_owned();
            let last = line.as_bytes().get(3) != Some(&b'-');
            lines.push(line);
            if last {
                return lines.join("\n");
            }
        }
    }

    async fn command(&mut self, command: &str) -> String {
        self.send(&format!("{command}\r\n")).await;
        self.reply().await
    }
}

#[tokio::test]
async fn a_multipart_utf8_mail_sent_with_lettre_is_recorded_and_decoded() {
    let server = SmtpServer::start().await.unwrap();

    transport(&server)
        .send(greeting("Jürgen <juergen@example.com>"))
        .await
        .unwrap();
    let messages = server.wait_for_messages(1, WAIT).await.unwrap();

    let mail = &messages[0];
    assert_eq!(mail.from, "noreply@notify.test");
    assert_eq!(mail.to, vec!["juergen@example.com"]);
    assert_eq!(mail.subject().as_deref(), Some("Grüße aus Köln ✓"));
    assert_eq!(
        mail.text_body().as_deref(),
        Some("Hallo Jürgen,\nschöne Grüße aus Köln ✓")
    );
    assert_eq!(
        mail.html_body().as_deref(),
        Some("<p>Hallo Jürgen,</p><p>schöne Grüße aus Köln ✓</p>")
    );
    assert_eq!(mail.message_id().as_deref(), Some("<greeting@notify.test>"));
    assert!(mail.raw.ends_with("\r\n"));
}

#[tokio::test]
async fn an_eight_bit_body_travels_with_8bitmime() {
    let server = SmtpServer::start().await.unwrap();
    let body = Body::new_with_encoding(
        "Zwölf Boxkämpfer jagen Viktor quer über den großen Sylter Deich.\n.Punkt".to_owned(),
        ContentTransferEncoding::EightBit,
    )
    .unwrap();
    let message = Message::builder()
        .from("noreply@notify.test".parse().unwrap())
        .to("anna@example.com".parse().unwrap())
        .subject("8bit")
        .singlepart(
            SinglePart::builder()
                .header(ContentType::TEXT_PLAIN)
                .body(body),
        )
        .unwrap();

    transport(&server).send(message).await.unwrap();
    let messages = server.wait_for_messages(1, WAIT).await.unwrap();

    assert_eq!(
        messages[0].text_body().as_deref(),
        Some("Zwölf Boxkämpfer jagen Viktor quer über den großen Sylter Deich.\n.Punkt")
    );
}

#[tokio::test]
async fn a_scripted_451_is_transient_for_lettre_and_the_next_mail_is_accepted() {
    let server = SmtpServer::start().await.unwrap();
    server.script([Reply::Temporary(451, "4.3.0 try again later".to_owned())]);
    let transport = transport(&server);

    let error = transport
        .send(greeting("anna@example.com"))
        .await
        .unwrap_err();
    transport.send(greeting("anna@example.com")).await.unwrap();

    assert!(error.is_transient(), "{error}");
    assert_eq!(error.status().map(u16::from), Some(451));
    assert_eq!(server.rejected(), 1);
    assert_eq!(server.wait_for_messages(1, WAIT).await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_scripted_550_is_permanent_for_lettre() {
    let server = SmtpServer::start().await.unwrap();
    server.script([Reply::Permanent(550, "5.1.1 no such user".to_owned())]);

    let error = transport(&server)
        .send(greeting("nobody@example.com"))
        .await
        .unwrap_err();

    assert!(error.is_permanent(), "{error}");
    assert_eq!(server.rejected(), 1);
    assert!(server.messages().is_empty());
}

#[tokio::test]
async fn scripted_replies_are_used_one_per_message_in_order() {
    let server = SmtpServer::start().await.unwrap();
    server.script([
        Reply::Accept,
        Reply::Temporary(421, "4.7.0 busy".to_owned()),
        Reply::Permanent(554, "5.7.1 refused".to_owned()),
    ]);
    let transport = transport(&server);

    let mut outcomes = Vec::new();
    for _ in 0..4 {
        outcomes.push(transport.send(greeting("anna@example.com")).await.is_ok());
    }

    assert_eq!(outcomes, vec![true, false, false, true]);
    assert_eq!(server.rejected(), 2);
    assert_eq!(server.messages().len(), 2);
}

#[tokio::test]
async fn concurrent_connections_are_served_at_once() {
    let server = SmtpServer::start().await.unwrap();
    let mut first = RawClient::connect(&server).await;
    let mut second = RawClient::connect(&server).await;

    // The first session stays open in the middle of a transaction while the second completes.
    first.command("EHLO first").await;
    first.command("MAIL FROM:<a@example.com>").await;
    let transport = transport(&server);
    transport.send(greeting("b@example.com")).await.unwrap();
    second.command("HELO second").await;
    second.command("MAIL FROM:<c@example.com>").await;
    second.command("RCPT TO:<d@example.com>").await;
    second.command("DATA").await;
    assert!(
        second
            .command("Subject: two\r\n\r\nsecond\r\n.")
            .await
            .starts_with("250 ")
    );

    assert_eq!(server.wait_for_messages(2, WAIT).await.unwrap().len(), 2);
}

#[tokio::test]
async fn ehlo_advertises_the_supported_extensions() {
    let server = SmtpServer::start().await.unwrap();
    let mut client = RawClient::connect(&server).await;

    let reply = client.command("EHLO client.test").await;

    let extensions: Vec<&str> = reply.lines().skip(1).map(|line| &line[4..]).collect();
    assert!(reply.starts_with("250-localhost"));
    assert_eq!(extensions[..3], ["8BITMIME", "SMTPUTF8", "PIPELINING"]);
    assert!(extensions[3].starts_with("SIZE "));
}

#[tokio::test]
async fn dot_stuffed_lines_are_unstuffed_and_line_ends_kept() {
    let server = SmtpServer::start().await.unwrap();
    let mut client = RawClient::connect(&server).await;

    client.command("EHLO client.test").await;
    client
        .command("MAIL FROM:<a@example.com> BODY=8BITMIME SMTPUTF8")
        .await;
    client.command("RCPT TO:<b@example.com>").await;
    assert!(client.command("DATA").await.starts_with("354 "));
    let reply = client
        .command("Subject: dots\r\n\r\n..leading dot\r\n...\r\nend\r\n.")
        .await;

    assert!(reply.starts_with("250 "), "{reply}");
    let mail = &server.messages()[0];
    assert_eq!(
        mail.raw,
        "Subject: dots\r\n\r\n.leading dot\r\n..\r\nend\r\n"
    );
    assert_eq!(mail.text_body().as_deref(), Some(".leading dot\n..\nend"));
}

#[tokio::test]
async fn a_session_stays_usable_after_a_scripted_failure() {
    let server = SmtpServer::start().await.unwrap();
    server.script([Reply::Temporary(451, "4.3.0 later".to_owned())]);
    let mut client = RawClient::connect(&server).await;

    client.command("EHLO client.test").await;
    client.command("MAIL FROM:<a@example.com>").await;
    client.command("RCPT TO:<b@example.com>").await;
    client.command("DATA").await;
    let refused = client.command("Subject: one\r\n\r\nfirst\r\n.").await;
    let reset = client.command("RSET").await;
    client.command("MAIL FROM:<a@example.com>").await;
    client.command("RCPT TO:<b@example.com>").await;
    client.command("DATA").await;
    let accepted = client.command("Subject: two\r\n\r\nsecond\r\n.").await;

    assert_eq!(refused, "451 4.3.0 later");
    assert!(reset.starts_with("250 "));
    assert!(accepted.starts_with("250 "), "{accepted}");
    assert_eq!(server.messages()[0].subject().as_deref(), Some("two"));
}

#[tokio::test]
async fn pipelined_commands_are_answered_in_order() {
    let server = SmtpServer::start().await.unwrap();
    let mut client = RawClient::connect(&server).await;
    client.command("EHLO client.test").await;

    client
        .send(concat!(
            "MAIL FROM:<a@example.com>\r\n",
            "RCPT TO:<b@example.com>\r\n",
            "RCPT TO:<c@example.com>\r\n",
            "DATA\r\n",
        ))
        .await;
    let mut replies = Vec::new();
    for _ in 0..4 {
        replies.push(client.reply().await[..3].to_owned());
    }
    let done = client.command("Subject: piped\r\n\r\nbody\r\n.").await;

    assert_eq!(replies, ["250", "250", "250", "354"]);
    assert!(done.starts_with("250 "));
    assert_eq!(
        server.messages()[0].to,
        vec!["b@example.com", "c@example.com"]
    );
}

#[tokio::test]
async fn commands_out_of_order_are_refused_without_ending_the_session() {
    let server = SmtpServer::start().await.unwrap();
    let mut client = RawClient::connect(&server).await;

    let mail_before_hello = client.command("MAIL FROM:<a@example.com>").await;
    client.command("HELO client.test").await;
    let rcpt_before_mail = client.command("RCPT TO:<b@example.com>").await;
    let data_before_mail = client.command("DATA").await;
    client.command("MAIL FROM:<a@example.com>").await;
    let second_mail = client.command("MAIL FROM:<a@example.com>").await;
    let data_before_rcpt = client.command("DATA").await;
    let still_there = client.command("NOOP").await;

    for reply in [
        &mail_before_hello,
        &rcpt_before_mail,
        &data_before_mail,
        &second_mail,
        &data_before_rcpt,
    ] {
        assert!(reply.starts_with("503 "), "{reply}");
    }
    assert!(still_there.starts_with("250 "));
}

#[tokio::test]
async fn simple_commands_get_their_usual_replies() {
    let server = SmtpServer::start().await.unwrap();
    let mut client = RawClient::connect(&server).await;

    let replies = [
        client.command("NOOP").await,
        client.command("VRFY anna").await,
        client.command("EXPN staff").await,
        client.command("HELO").await,
        client.command("EHLO x").await,
        client.command("MAIL FROM:<a@example.com> AUTH=<>").await,
        client.command("QUIT").await,
    ];

    let codes: Vec<&str> = replies.iter().map(|reply| &reply[..3]).collect();
    assert_eq!(codes, ["250", "252", "500", "501", "250", "555", "221"]);
}

#[tokio::test]
async fn a_null_sender_is_recorded_as_empty() {
    let server = SmtpServer::start().await.unwrap();
    let mut client = RawClient::connect(&server).await;

    client.command("EHLO client.test").await;
    client.command("MAIL FROM:<>").await;
    client.command("RCPT TO:<b@example.com>").await;
    client.command("DATA").await;
    client.command("Subject: bounce\r\n\r\nbody\r\n.").await;

    assert_eq!(server.messages()[0].from, "");
}

#[tokio::test]
async fn waiting_for_more_messages_than_arrive_times_out_with_the_count() {
    let server = SmtpServer::start().await.unwrap();

    let error = server
        .wait_for_messages(1, Duration::from_millis(50))
        .await
        .unwrap_err();

    assert_eq!(error.to_string(), "waited 50ms for 1 messages, got 0");
}

#[tokio::test]
async fn after_shutdown_the_port_is_closed() {
    let server = SmtpServer::start().await.unwrap();
    let mut open_session = RawClient::connect(&server).await;

    server.shutdown().await;

    assert!(TcpStream::connect(server.addr()).await.is_err());
    let mut rest = String::new();
    let read = open_session.replies.read_line(&mut rest).await;
    assert!(
        matches!(read, Ok(0) | Err(_)),
        "session still open: {rest:?}"
    );
}

#[tokio::test]
async fn dropping_the_last_handle_stops_the_server() {
    let server = SmtpServer::start().await.unwrap();
    let addr = server.addr();
    let clone = server.clone();
    let mut session = RawClient::connect(&server).await;

    drop(server);
    assert!(session.command("NOOP").await.starts_with("250 "));
    drop(clone);

    let mut rest = String::new();
    let closed = tokio::time::timeout(WAIT, session.replies.read_line(&mut rest)).await;
    assert!(
        matches!(closed, Ok(Ok(0) | Err(_))),
        "session still open: {rest:?}"
    );
    assert!(TcpStream::connect(addr).await.is_err());
}
