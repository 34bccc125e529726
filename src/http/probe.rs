//! A minimal HTTP/1.1 GET over a plain or TLS stream, for the probes this
//! binary makes of its own server on loopback (`healthcheck`, `drill`). Not
//! a general client: one request per connection, `Connection: close`.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Status, headers and body of one answer.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    /// Header names in lower case, in order.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Sends `GET path` with the extra `headers` and reads the whole answer.
///
/// # Errors
/// I/O errors, or an answer that is not HTTP/1.1.
pub async fn get<S: AsyncRead + AsyncWrite + Unpin>(
    s: S,
    path: &str,
    headers: &[(&str, &str)],
) -> std::io::Result<Answer> {
    send(s, "GET", path, headers, "").await
}

/// Sends one request with an optional form body and reads the answer.
///
/// # Errors
/// I/O errors, or an answer that is not HTTP/1.1.
pub async fn send<S: AsyncRead + AsyncWrite + Unpin>(
    s: S,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    form: &str,
) -> std::io::Result<Answer> {
    exchange(
        s,
        method,
        path,
        headers,
        "application/x-www-form-urlencoded",
        form,
    )
    .await
}

/// Sends `method path` with a JSON body over `s`.
///
/// # Errors
/// I/O errors, or an answer that is not HTTP/1.1.
pub async fn send_json<S: AsyncRead + AsyncWrite + Unpin>(
    s: S,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    json: &str,
) -> std::io::Result<Answer> {
    exchange(s, method, path, headers, "application/json", json).await
}

async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    content_type: &str,
    body: &str,
) -> std::io::Result<Answer> {
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if method != "GET" {
        req.push_str(&format!(
            "Content-Type: {content_type}\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).await?;
    let mut raw = Vec::new();
    s.take(64 << 20).read_to_end(&mut raw).await?;
    parse(&raw).ok_or_else(|| std::io::Error::other("the answer is not HTTP/1.1"))
}

fn parse(raw: &[u8]) -> Option<Answer> {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..split]).ok()?;
    let status = head.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()?;
    let body = &raw[split + 4..];
    let chunked = head
        .lines()
        .any(|l| l.to_ascii_lowercase().replace(' ', "") == "transfer-encoding:chunked");
    let body = if chunked {
        dechunk(body)?
    } else {
        body.to_vec()
    };
    let headers = head
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Some(Answer {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

fn dechunk(mut b: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = b.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&b[..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        b = &b[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(b.get(..size)?);
        b = b.get(size + 2..)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_plain_and_chunked_answers() {
        let a = parse(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok").expect("plain");
        assert_eq!((a.status, a.body.as_str()), (200, "ok"));
        let c = parse(
            b"HTTP/1.1 503 X\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
        )
        .expect("chunked");
        assert_eq!((c.status, c.body.as_str()), (503, "abcde"));
        assert!(parse(b"garbage").is_none());
        assert!(parse(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n").is_none());
    }
}
