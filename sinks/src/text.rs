//! Text the sinks put in error lines and logs: a URL without its secret,
//! and a server's multi-line error on one line.

/// `url` with the password (`user:***@`) or a lone token (`***@`) in its
/// authority replaced, for messages.
pub fn redact(url: &str) -> String {
    let Some(scheme) = url.find("://").map(|i| i + 3) else { return url.to_string() };
    let rest = &url[scheme..];
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    let Some(at) = authority.rfind('@') else { return url.to_string() };
    let masked = match authority[..at].split_once(':') {
        Some((user, _)) => format!("{user}:***"),
        None => "***".to_string(),
    };
    format!("{}{masked}{}", &url[..scheme], &url[scheme + at..])
}

/// `s` on one line, runs of whitespace as one space.
pub fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted_and_nothing_else() {
        assert_eq!(redact("redis://u:secret@h:1/0"), "redis://u:***@h:1/0");
        assert_eq!(redact("redis://:secret@h:1/0"), "redis://:***@h:1/0");
        assert_eq!(redact("nats://token@h:1"), "nats://***@h:1");
        assert_eq!(redact("amqp://u:p@ss@h:1/%2f"), "amqp://u:***@h:1/%2f");
        assert_eq!(redact("https://h/x@y?a=b@c"), "https://h/x@y?a=b@c");
        assert_eq!(redact("https://h/x"), "https://h/x");
        assert_eq!(redact("not a url"), "not a url");
    }

    #[test]
    fn one_line_joins_lines() {
        assert_eq!(one_line("a\n  b\r\n\tc "), "a b c");
    }
}
