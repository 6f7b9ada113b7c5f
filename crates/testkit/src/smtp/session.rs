//! One SMTP connection: reads the client's commands, answers them, and hands every complete
//! message to the server for its scripted decision.

use std::io;
use std::sync::Arc;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

use super::{Mail, Recorded};

/// The name the server gives itself in its greeting and EHLO reply.
const SERVER_NAME: &str = "localhost";
/// The largest message accepted, advertised with SIZE.
const MAX_MESSAGE_BYTES: usize = 32 * 1024 * 1024;
/// Longer command lines end the session: no client that follows RFC 5321 sends them.
const MAX_COMMAND_LINE_BYTES: usize = 4096;
/// Longer lines of message content end the session as well.
const MAX_DATA_LINE_BYTES: usize = 1024 * 1024;

pub(super) async fn serve(stream: TcpStream, recorded: Arc<Recorded>) -> io::Result<()> {
    let (input, output) = stream.into_split();
    let mut session = Session {
        input: BufReader::new(input),
        output,
        recorded,
        greeted: false,
        envelope: None,
    };
    session.run().await
}

struct Session {
    input: BufReader<OwnedReadHalf>,
    output: OwnedWriteHalf,
    recorded: Arc<Recorded>,
    /// Whether the client has sent EHLO or HELO.
    greeted: bool,
    /// The transaction in progress, from MAIL until the end of DATA or RSET.
    envelope: Option<Envelope>,
}

struct Envelope {
    from: String,
    to: Vec<String>,
}

/// What a command leaves the session to do next.
enum Next {
    ReadCommand,
    Close,
}

/// The content of a message as read after DATA.
enum Content {
    Complete(Vec<u8>),
    TooLarge,
    /// The client left or sent a line too long to read.
    SessionOver,
}

enum Line {
    Complete(Vec<u8>),
    TooLong,
    Closed,
}

impl Session {
    async fn run(&mut self) -> io::Result<()> {
        self.reply(220, &format!("{SERVER_NAME} notify-testkit SMTP ready"))
            .await?;
        loop {
            let line = match self.read_line(MAX_COMMAND_LINE_BYTES).await? {
                Line::Complete(line) => line,
                Line::TooLong => {
                    self.reply(500, "5.5.2 line too long").await?;
                    return Ok(());
                }
                Line::Closed => return Ok(()),
            };
            let line = String::from_utf8_lossy(&line);
            if let Next::Close = self.command(line.trim_end_matches(['\r', '\n'])).await? {
                return Ok(());
            }
        }
    }

    async fn command(&mut self, line: &str) -> io::Result<Next> {
        let (verb, argument) = line.split_once(' ').unwrap_or((line, ""));
        let argument = argument.trim();
        match verb.to_ascii_uppercase().as_str() {
            "EHLO" => self.hello(argument, true).await?,
            "HELO" => self.hello(argument, false).await?,
            "MAIL" => self.mail(argument).await?,
            "RCPT" => self.rcpt(argument).await?,
            "DATA" => return self.data().await,
            "RSET" => {
                self.envelope = None;
                self.reply(250, "2.0.0 Ok").await?;
            }
            "NOOP" => self.reply(250, "2.0.0 Ok").await?,
            "VRFY" => {
                self.reply(
                    252,
                    "2.1.5 cannot verify the user, but will take the message",
                )
                .await?
            }
            "QUIT" => {
                self.reply(221, "2.0.0 Bye").await?;
                return Ok(Next::Close);
            }
            _ => self.reply(500, "5.5.2 command not recognized").await?,
        }
        Ok(Next::ReadCommand)
    }

    async fn hello(&mut self, client_name: &str, extended: bool) -> io::Result<()> {
        if client_name.is_empty() {
            return self
                .reply(501, "5.5.4 a domain or address is required")
                .await;
        }

        self.greeted = true;
        self.envelope = None;
        if extended {
            let extensions = format!(
                "{SERVER_NAME} greets {client_name}\n{}\nSIZE {MAX_MESSAGE_BYTES}",
                ["8BITMIME", "SMTPUTF8", "PIPELINING"].join("\n")
            );
            self.reply(250, &extensions).await
        } else {
            self.reply(250, SERVER_NAME).await
        }
    }

    async fn mail(&mut self, argument: &str) -> io::Result<()> {
        if !self.greeted {
            return self.reply(503, "5.5.1 send EHLO or HELO first").await;
        }
        if self.envelope.is_some() {
            return self
                .reply(503, "5.5.1 a transaction is already in progress")
                .await;
        }
        let Some((from, parameters)) = strip_prefix_ignore_case(argument, "FROM:").and_then(path)
        else {
            return self.reply(501, "5.5.4 syntax: MAIL FROM:<address>").await;
        };
        if let Err((code, text)) = check_mail_parameters(parameters) {
            return self.reply(code, text).await;
        }

        self.envelope = Some(Envelope {
            from,
            to: Vec::new(),
        });
        self.reply(250, "2.1.0 Ok").await
    }

    async fn rcpt(&mut self, argument: &str) -> io::Result<()> {
        if self.envelope.is_none() {
            return self.reply(503, "5.5.1 send MAIL first").await;
        }
        let Some((to, parameters)) = strip_prefix_ignore_case(argument, "TO:").and_then(path)
        else {
            return self.reply(501, "5.5.4 syntax: RCPT TO:<address>").await;
        };
        if to.is_empty() {
            return self
                .reply(501, "5.1.3 a recipient address is required")
                .await;
        }
        if !parameters.is_empty() {
            return self
                .reply(555, "5.5.4 RCPT parameters are not supported")
                .await;
        }

        if let Some(envelope) = &mut self.envelope {
            envelope.to.push(to);
        }
        self.reply(250, "2.1.5 Ok").await
    }

    async fn data(&mut self) -> io::Result<Next> {
        let envelope = match self.envelope.take() {
            Some(envelope) if !envelope.to.is_empty() => envelope,
            unusable => {
                let text = if unusable.is_some() {
                    "5.5.1 send RCPT first"
                } else {
                    "5.5.1 send MAIL first"
                };
                self.envelope = unusable;
                self.reply(503, text).await?;
                return Ok(Next::ReadCommand);
            }
        };
        self.reply(354, "End data with <CR><LF>.<CR><LF>").await?;

        let content = match self.read_content().await? {
            Content::Complete(content) => content,
            Content::TooLarge => {
                self.reply(552, "5.3.4 message exceeds the size limit")
                    .await?;
                return Ok(Next::ReadCommand);
            }
            Content::SessionOver => return Ok(Next::Close),
        };

        let mail = Mail {
            from: envelope.from,
            to: envelope.to,
            raw: match String::from_utf8(content) {
                Ok(raw) => raw,
                Err(not_utf8) => String::from_utf8_lossy(not_utf8.as_bytes()).into_owned(),
            },
        };
        let (code, text) = self.recorded.answer(mail);
        self.reply(code, &text).await?;
        Ok(Next::ReadCommand)
    }

    /// Reads message content up to the line holding a single dot, undoing dot-stuffing.
    async fn read_content(&mut self) -> io::Result<Content> {
        let mut content = Vec::new();
        let mut too_large = false;
        loop {
            let mut line = match self.read_line(MAX_DATA_LINE_BYTES).await? {
                Line::Complete(line) => line,
                Line::TooLong => {
                    self.reply(500, "5.5.2 line too long").await?;
                    return Ok(Content::SessionOver);
                }
                Line::Closed => return Ok(Content::SessionOver),
            };
            if line == b".\r\n" || line == b".\n" {
                return Ok(if too_large {
                    Content::TooLarge
                } else {
                    Content::Complete(content)
                });
            }
            if line.first() == Some(&b'.') {
                line.remove(0);
            }
            // An oversized message is still read to its end so that the session can go on.
            too_large |= content.len() + line.len() > MAX_MESSAGE_BYTES;
            if !too_large {
                content.extend_from_slice(&line);
            }
        }
    }

    /// Reads one line, its line end included.
    async fn read_line(&mut self, limit: usize) -> io::Result<Line> {
        let mut line = Vec::new();
        let read = (&mut self.input)
            .take(limit as u64)
            .read_until(b'\n', &mut line)
            .await?;
        Ok(match line.last() {
            Some(b'\n') => Line::Complete(line),
            _ if read == limit => Line::TooLong,
            // The client closed the connection, perhaps in the middle of a line.
            _ => Line::Closed,
        })
    }

    /// Sends a reply; text with several lines becomes a multiline reply.
    async fn reply(&mut self, code: u16, text: &str) -> io::Result<()> {
        let mut reply = String::new();
        let mut lines = text.lines().peekable();
        while let Some(line) = lines.next() {
            let separator = if lines.peek().is_some() { '-' } else { ' ' };
            reply.push_str(&format!("{code}{separator}{line}\r\n"));
        }
        if reply.is_empty() {
            reply = format!("{code} \r\n");
        }
        self.output.write_all(reply.as_bytes()).await
    }
}

fn strip_prefix_ignore_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &text[prefix.len()..])
}

/// Splits a MAIL or RCPT argument, after its `FROM:` or `TO:`, into the address and the
/// parameters that follow it. Angle brackets and a source route are removed; a bare address
/// without brackets is tolerated.
fn path(argument: &str) -> Option<(String, &str)> {
    let argument = argument.trim_start();
    let (address, rest) = match argument.strip_prefix('<') {
        Some(inside) => {
            let end = closing_bracket(inside)?;
            (&inside[..end], &inside[end + 1..])
        }
        None => argument.split_at(argument.find(' ').unwrap_or(argument.len())),
    };
    let address = match address.strip_prefix('@') {
        Some(route) => route.split_once(':')?.1,
        None => address,
    };
    Some((address.to_owned(), rest.trim()))
}

/// The position of the `>` closing a path, skipping any inside a quoted local part.
fn closing_bracket(path: &str) -> Option<usize> {
    let mut quoted = false;
    let mut escaped = false;
    for (position, character) in path.char_indices() {
        match character {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '>' if !quoted => return Some(position),
            _ => {}
        }
    }
    None
}

/// Accepts the MAIL parameters of the advertised extensions and refuses any other.
fn check_mail_parameters(parameters: &str) -> Result<(), (u16, &'static str)> {
    for parameter in parameters.split_whitespace() {
        let (keyword, value) = parameter.split_once('=').unwrap_or((parameter, ""));
        match keyword.to_ascii_uppercase().as_str() {
            "SMTPUTF8" if value.is_empty() => {}
            "BODY"
                if ["7BIT", "8BITMIME"]
                    .iter()
                    .any(|body| value.eq_ignore_ascii_case(body)) => {}
            "SIZE" => match value.parse::<usize>() {
                Ok(size) if size <= MAX_MESSAGE_BYTES => {}
                Ok(_) => return Err((552, "5.3.4 message exceeds the size limit")),
                Err(_) => return Err((501, "5.5.4 SIZE needs a number of bytes")),
            },
            _ => return Err((555, "5.5.4 unsupported MAIL parameter")),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_loses_its_brackets_and_keeps_its_parameters_apart() {
        assert_eq!(
            path("<a@example.com> SMTPUTF8 BODY=8BITMIME"),
            Some(("a@example.com".to_owned(), "SMTPUTF8 BODY=8BITMIME"))
        );
        assert_eq!(path(" <>"), Some((String::new(), "")));
        assert_eq!(
            path("bare@example.com"),
            Some(("bare@example.com".to_owned(), ""))
        );
        assert_eq!(path("<a@example.com"), None);
    }

    #[test]
    fn a_bracket_inside_a_quoted_local_part_does_not_end_the_path() {
        assert_eq!(
            path(r#"<"odd>name"@example.com>"#),
            Some((r#""odd>name"@example.com"#.to_owned(), ""))
        );
    }

    #[test]
    fn a_source_route_is_dropped_from_the_address() {
        assert_eq!(
            path("<@relay.example:user@example.com>"),
            Some(("user@example.com".to_owned(), ""))
        );
    }

    #[test]
    fn the_parameters_of_advertised_extensions_are_accepted() {
        assert_eq!(
            check_mail_parameters("SMTPUTF8 BODY=8BITMIME SIZE=1024"),
            Ok(())
        );
        assert_eq!(check_mail_parameters("body=7bit"), Ok(()));
    }

    #[test]
    fn unknown_or_oversized_parameters_are_refused() {
        assert_eq!(check_mail_parameters("AUTH=<>").unwrap_err().0, 555);
        assert_eq!(check_mail_parameters("BODY=BINARYMIME").unwrap_err().0, 555);
        assert_eq!(
            check_mail_parameters("SIZE=999999999999").unwrap_err().0,
            552
        );
        assert_eq!(check_mail_parameters("SIZE=lots").unwrap_err().0, 501);
    }
}
