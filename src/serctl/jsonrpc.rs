//! The JSON-RPC transport: one request per connection to ser's
//! `jsonrpc_socket` (a unix stream socket) or `jsonrpc_listen` (loopback
//! TCP), the response read to the end of the connection and turned back
//! into a status line and body lines, so that every command prints as it
//! does over the FIFO.
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::proto::Reply;
use super::transport::{io_err, TransportError};

/// The longest response read (a `ul_dump` of a busy registrar).
const MAX_RESPONSE: usize = 16 * 1024 * 1024;

/// Where ser's JSON-RPC server listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    Unix(PathBuf),
    Tcp(SocketAddr),
}

impl Endpoint {
    /// `host:port` with a numeric address is TCP; anything else a path.
    pub fn parse(s: &str) -> Endpoint {
        match s.parse::<SocketAddr>() {
            Ok(a) => Endpoint::Tcp(a),
            Err(_) => Endpoint::Unix(PathBuf::from(s)),
        }
    }

    /// A path naming the endpoint in messages.
    pub fn display_path(&self) -> PathBuf {
        match self {
            Endpoint::Unix(p) => p.clone(),
            Endpoint::Tcp(a) => PathBuf::from(a.to_string()),
        }
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::Unix(p) => write!(f, "{}", p.display()),
            Endpoint::Tcp(a) => write!(f, "{a}"),
        }
    }
}

/// The request object for `cmd` with one string parameter per line.
pub fn request(cmd: &str, params: &[&str]) -> Vec<u8> {
    let v = json!({"jsonrpc": "2.0", "method": cmd, "params": params, "id": 1});
    let mut out = v.to_string().into_bytes();
    out.push(b'\n');
    out
}

/// Sends `cmd` and returns the response as a management reply.
pub fn exchange(
    ep: &Endpoint,
    cmd: &str,
    params: &[&str],
    timeout: Duration,
) -> Result<Reply, TransportError> {
    let path = ep.display_path();
    let deadline = Instant::now() + timeout;
    let raw = match ep {
        Endpoint::Unix(p) => {
            let s = UnixStream::connect(p).map_err(|e| connect_error(p, e))?;
            talk(s, &path, cmd, params, timeout, deadline)?
        }
        Endpoint::Tcp(a) => {
            let s = TcpStream::connect_timeout(a, timeout).map_err(|e| connect_error(&path, e))?;
            talk(s, &path, cmd, params, timeout, deadline)?
        }
    };
    let v: Value =
        serde_json::from_slice(&raw).map_err(|e| bad(&path, format!("not JSON: {e}")))?;
    to_reply(&v).map_err(|why| bad(&path, why))
}

fn bad(path: &Path, why: String) -> TransportError {
    TransportError::Io {
        op: "read the response of",
        path: path.to_path_buf(),
        source: io::Error::new(io::ErrorKind::InvalidData, why),
    }
}

fn connect_error(path: &Path, e: io::Error) -> TransportError {
    let path = path.to_path_buf();
    match e.kind() {
        io::ErrorKind::ConnectionRefused => TransportError::NotRunning {
            path,
            reason: "connection refused on",
        },
        io::ErrorKind::NotFound => TransportError::NotRunning {
            path,
            reason: "no such socket",
        },
        _ => TransportError::Io {
            op: "connect to",
            path,
            source: e,
        },
    }
}

trait Conn: Read + Write {
    fn set_timeouts(&self, t: Duration) -> io::Result<()>;
}

impl Conn for UnixStream {
    fn set_timeouts(&self, t: Duration) -> io::Result<()> {
        self.set_read_timeout(Some(t))?;
        self.set_write_timeout(Some(t))
    }
}

impl Conn for TcpStream {
    fn set_timeouts(&self, t: Duration) -> io::Result<()> {
        self.set_read_timeout(Some(t))?;
        self.set_write_timeout(Some(t))
    }
}

/// Writes the request and reads until the server closes.
fn talk(
    mut s: impl Conn,
    path: &Path,
    cmd: &str,
    params: &[&str],
    timeout: Duration,
    deadline: Instant,
) -> Result<Vec<u8>, TransportError> {
    s.set_timeouts(timeout)
        .map_err(io_err("set timeout on", path))?;
    s.write_all(&request(cmd, params))
        .map_err(io_err("send to", path))?;
    let mut out = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        if Instant::now() >= deadline {
            return Err(TransportError::Timeout {
                path: path.to_path_buf(),
                timeout,
            });
        }
        match s.read(&mut chunk) {
            Ok(0) => return Ok(out),
            Ok(n) => {
                out.extend_from_slice(&chunk[..n]);
                if out.len() > MAX_RESPONSE {
                    return Err(bad(path, format!("longer than {MAX_RESPONSE} bytes")));
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Err(TransportError::Timeout {
                    path: path.to_path_buf(),
                    timeout,
                })
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io_err("receive from", path)(e)),
        }
    }
}

/// A response as the FIFO would have answered: a result of lines is
/// `200 ok` and the lines; a later report keeps its status; an object is
/// one `name: value` line per member; an error carries the command's
/// status when it has one, else 500 for an unknown method and 400 for a
/// request the server could not take.
pub fn to_reply(v: &Value) -> Result<Reply, String> {
    if let Some(r) = v.get("result") {
        return Ok(match r {
            Value::Array(lines) => Reply {
                code: 200,
                text: "ok".into(),
                body: lines.iter().map(line).collect(),
            },
            Value::Object(o) if o.contains_key("status") => Reply {
                code: status(o.get("status"))?,
                text: o.get("reason").map(line).unwrap_or_default(),
                body: lines_of(o.get("lines")),
            },
            Value::Object(o) => Reply {
                code: 200,
                text: "ok".into(),
                body: o.iter().map(|(k, v)| format!("{k}: {}", line(v))).collect(),
            },
            other => Reply {
                code: 200,
                text: "ok".into(),
                body: vec![line(other)],
            },
        });
    }
    let Some(e) = v.get("error") else {
        return Err("neither result nor error".into());
    };
    let message = e.get("message").map(line).unwrap_or_default();
    if let Some(d) = e.get("data").filter(|d| d.get("status").is_some()) {
        return Ok(Reply {
            code: status(d.get("status"))?,
            text: d.get("reason").map(line).unwrap_or(message),
            body: lines_of(d.get("lines")),
        });
    }
    let code = match e.get("code").and_then(Value::as_i64) {
        Some(-32601) => 500,
        Some(_) => 400,
        None => return Err("error without a code".into()),
    };
    Ok(Reply {
        code,
        text: message,
        body: Vec::new(),
    })
}

fn status(v: Option<&Value>) -> Result<u16, String> {
    v.and_then(Value::as_u64)
        .and_then(|n| u16::try_from(n).ok())
        .filter(|n| (100..=699).contains(n))
        .ok_or_else(|| format!("bad status {v:?}"))
}

fn line(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn lines_of(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::Array(a)) => a.iter().map(line).collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        assert_eq!(
            Endpoint::parse("127.0.0.1:5081"),
            Endpoint::Tcp("127.0.0.1:5081".parse().unwrap())
        );
        assert_eq!(
            Endpoint::parse("/run/ser/jsonrpc.sock"),
            Endpoint::Unix("/run/ser/jsonrpc.sock".into())
        );
    }

    #[test]
    fn requests_carry_lines_as_string_params() {
        let r: Value = serde_json::from_slice(&request("ul_rm", &["location", "a@b"])).unwrap();
        assert_eq!(r["method"], "ul_rm");
        assert_eq!(r["params"], json!(["location", "a@b"]));
        assert_eq!(r["jsonrpc"], "2.0");
    }

    #[test]
    fn responses_become_fifo_replies() {
        let r = to_reply(&json!({"jsonrpc":"2.0","result":["a","b"],"id":1})).unwrap();
        assert_eq!((r.code, r.text.as_str(), r.body.len()), (200, "ok", 2));
        let r =
            to_reply(&json!({"result":{"status":404,"reason":"Not Found","lines":["x"]}})).unwrap();
        assert_eq!((r.code, r.text.as_str()), (404, "Not Found"));
        let r = to_reply(&json!({"result":{"total":3}})).unwrap();
        assert_eq!(r.body, vec!["total: 3"]);
        let r = to_reply(&json!({"error":{"code":-32000,"message":"404 x",
            "data":{"status":404,"reason":"Username a not found","lines":[]}}}))
        .unwrap();
        assert_eq!((r.code, r.text.as_str()), (404, "Username a not found"));
        let r =
            to_reply(&json!({"error":{"code":-32601,"message":"method not found: x"}})).unwrap();
        assert_eq!(r.code, 500);
        let r = to_reply(&json!({"error":{"code":-32602,"message":"invalid params"}})).unwrap();
        assert_eq!(r.code, 400);
        assert!(to_reply(&json!({"id":1})).is_err());
        assert!(to_reply(&json!({"result":{"status":7}})).is_err());
    }
}
