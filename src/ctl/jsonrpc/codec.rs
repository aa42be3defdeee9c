//! JSON-RPC 2.0 framing of one management request: reading the request
//! object (bounded in size and depth), turning its `params` into the
//! parameter lines the command table reads, and writing responses.
//!
//! Parameters are positional only. Each element becomes FIFO lines: a
//! string is its lines (split at LF), a number its decimal text, an array
//! of strings/numbers one line each followed by a `.` line (the FIFO's end
//! of a header set or body). `true`/`false`/`null`/objects are refused:
//! the FIFO has no such values, and guessing a spelling would hide errors.

use serde_json::{json, Value};

/// Longest request accepted, in bytes.
pub const MAX_REQUEST: usize = 64 * 1024;
/// Deepest nesting of arrays/objects accepted in a request.
pub const MAX_DEPTH: usize = 16;

/// JSON-RPC 2.0's reserved error codes.
pub const PARSE_ERROR: i64 = -32700;
pub const INVALID_REQUEST: i64 = -32600;
pub const METHOD_NOT_FOUND: i64 = -32601;
pub const INVALID_PARAMS: i64 = -32602;
/// Implementation-defined server error: the command ran and failed; the
/// error's `data` carries the FIFO status code, reason and body lines.
pub const COMMAND_FAILED: i64 = -32000;

/// A request's `id`: answered with the same value; `None` for a
/// notification (no `id` member), which gets no response.
pub type Id = Option<Value>;

/// A well-formed request.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub method: String,
    pub params: Vec<String>,
    pub id: Id,
}

/// A JSON-RPC error object with the id to answer it under.
#[derive(Debug, Clone, PartialEq)]
pub struct RpcError {
    pub id: Value,
    pub code: i64,
    pub message: String,
    pub data: Option<Value>,
}

impl RpcError {
    pub fn new(id: Value, code: i64, message: impl Into<String>) -> RpcError {
        RpcError {
            id,
            code,
            message: message.into(),
            data: None,
        }
    }

    pub fn with_data(mut self, data: Value) -> RpcError {
        self.data = Some(data);
        self
    }

    /// The response object.
    pub fn to_value(&self) -> Value {
        let mut err = json!({"code": self.code, "message": self.message});
        if let Some(d) = &self.data {
            err["data"] = d.clone();
        }
        json!({"jsonrpc": "2.0", "error": err, "id": self.id})
    }
}

/// What the bytes read so far amount to.
#[derive(Debug, PartialEq)]
pub enum Framed {
    /// Not a whole JSON value yet: read on.
    Incomplete,
    /// A request to run.
    Request(Request),
    /// Answer this error and close.
    Error(RpcError),
}

/// Reads `buf` as one request. Whitespace after the value is allowed;
/// anything else after it is a parse error.
pub fn frame(buf: &[u8]) -> Framed {
    if buf.len() > MAX_REQUEST {
        return Framed::Error(RpcError::new(
            Value::Null,
            INVALID_REQUEST,
            format!("request larger than {MAX_REQUEST} bytes"),
        ));
    }
    if buf.iter().all(u8::is_ascii_whitespace) {
        return Framed::Incomplete;
    }
    // Checked before parsing so that serde's own recursion is never deep.
    if let Err(e) = check_depth(buf) {
        return Framed::Error(RpcError::new(Value::Null, PARSE_ERROR, e));
    }
    match serde_json::from_slice::<Value>(buf) {
        Ok(v) => match request(v) {
            Ok(r) => Framed::Request(r),
            Err(e) => Framed::Error(e),
        },
        Err(e) if e.is_eof() => Framed::Incomplete,
        Err(e) => Framed::Error(RpcError::new(
            Value::Null,
            PARSE_ERROR,
            format!("parse error: {e}"),
        )),
    }
}

/// What a client that stopped sending gets: its bytes never made a value.
pub fn incomplete_error() -> RpcError {
    RpcError::new(
        Value::Null,
        PARSE_ERROR,
        "parse error: the request ended before its JSON value did",
    )
}

/// Nesting deeper than [`MAX_DEPTH`], counted outside strings.
fn check_depth(buf: &[u8]) -> Result<(), String> {
    let (mut depth, mut in_str, mut escaped) = (0usize, false, false);
    for &b in buf {
        if in_str {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_str = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_str = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(format!("parse error: nested deeper than {MAX_DEPTH}"));
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

/// Checks the request object's members (JSON-RPC 2.0, section 4).
fn request(v: Value) -> Result<Request, RpcError> {
    let invalid = |id: &Value, why: &str| RpcError::new(id.clone(), INVALID_REQUEST, why);
    let Value::Object(mut o) = v else {
        let why = if v.is_array() {
            "invalid request: batch requests are not supported; send one request per connection"
        } else {
            "invalid request: not a JSON object"
        };
        return Err(invalid(&Value::Null, why));
    };
    let id = o.remove("id");
    let answer_id = match &id {
        None => Value::Null,
        Some(i @ (Value::String(_) | Value::Number(_) | Value::Null)) => i.clone(),
        Some(_) => {
            return Err(invalid(
                &Value::Null,
                "invalid request: id must be a string, a number or null",
            ))
        }
    };
    if o.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return Err(invalid(
            &answer_id,
            "invalid request: jsonrpc must be \"2.0\"",
        ));
    }
    let method = match o.remove("method") {
        Some(Value::String(m)) if !m.is_empty() => m,
        _ => {
            return Err(invalid(
                &answer_id,
                "invalid request: method must be a non-empty string",
            ))
        }
    };
    let params = match o.remove("params") {
        None => Vec::new(),
        Some(Value::Array(a)) => {
            param_lines(&a).map_err(|why| RpcError::new(answer_id.clone(), INVALID_PARAMS, why))?
        }
        Some(Value::Object(_)) => {
            return Err(RpcError::new(
                answer_id,
                INVALID_PARAMS,
                "invalid params: named parameters are not supported; pass an array",
            ))
        }
        Some(_) => {
            return Err(invalid(
                &answer_id,
                "invalid request: params must be an array",
            ))
        }
    };
    Ok(Request { method, params, id })
}

/// The FIFO lines of positional parameters (see the module comment).
pub fn param_lines(params: &[Value]) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for (i, p) in params.iter().enumerate() {
        match p {
            Value::Array(items) => {
                for it in items {
                    out.extend(scalar_lines(it).ok_or_else(|| {
                        format!("invalid params: parameter {i}: an array may hold only strings and numbers")
                    })?);
                }
                out.push(".".to_string());
            }
            other => out.extend(scalar_lines(other).ok_or_else(|| {
                format!("invalid params: parameter {i}: expected a string, a number or an array")
            })?),
        }
    }
    Ok(out)
}

fn scalar_lines(v: &Value) -> Option<Vec<String>> {
    match v {
        Value::String(s) => Some(
            s.split('\n')
                .map(|l| super::super::request::trim_line(l).to_string())
                .collect(),
        ),
        Value::Number(n) => Some(vec![n.to_string()]),
        _ => None,
    }
}

/// A success response.
pub fn result(id: Value, result: Value) -> Value {
    json!({"jsonrpc": "2.0", "result": result, "id": id})
}

/// The bytes sent for a response: compact JSON and a LF.
pub fn encode(v: &Value) -> Vec<u8> {
    let mut out = serde_json::to_vec(v).unwrap_or_else(|_| {
        br#"{"jsonrpc":"2.0","error":{"code":-32603,"message":"internal error"},"id":null}"#
            .to_vec()
    });
    out.push(b'\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(s: &str) -> Request {
        match frame(s.as_bytes()) {
            Framed::Request(r) => r,
            other => panic!("{s}: {other:?}"),
        }
    }

    fn err(s: &[u8]) -> RpcError {
        match frame(s) {
            Framed::Error(e) => e,
            other => panic!("{}: {other:?}", String::from_utf8_lossy(s)),
        }
    }

    #[test]
    fn requests_and_their_params() {
        let r = req(r#"{"jsonrpc":"2.0","method":"ps","id":7}"#);
        assert_eq!(r.method, "ps");
        assert!(r.params.is_empty());
        assert_eq!(r.id, Some(json!(7)));
        let r = req(
            r#" {"jsonrpc":"2.0","method":"t_uac_dlg","params":["OPTIONS","sip:a@b",".",["From: <sip:x@y>","To: <sip:a@b>"],"l1\r\nl2 \n."],"id":"x"} "#,
        );
        assert_eq!(
            r.params,
            vec![
                "OPTIONS",
                "sip:a@b",
                ".",
                "From: <sip:x@y>",
                "To: <sip:a@b>",
                ".",
                "l1",
                "l2",
                "."
            ]
        );
        let r = req(r#"{"jsonrpc":"2.0","method":"ul_add","params":["location","a",3600,0.5,""]}"#);
        assert_eq!(r.params, vec!["location", "a", "3600", "0.5", ""]);
        assert_eq!(r.id, None, "a notification");
    }

    #[test]
    fn incomplete_until_the_value_closes() {
        let full = br#"{"jsonrpc":"2.0","method":"ps","id":1}"#;
        for n in 0..full.len() {
            assert_eq!(frame(&full[..n]), Framed::Incomplete, "{n}");
        }
        assert!(matches!(frame(full), Framed::Request(_)));
    }

    #[test]
    fn bad_requests_get_the_standard_codes() {
        assert_eq!(err(b"{\"jsonrpc\":\"2.0\",,}").code, PARSE_ERROR);
        assert_eq!(err(b"hello").code, PARSE_ERROR);
        assert_eq!(err(b"{} {}").code, PARSE_ERROR);
        assert_eq!(err(b"\xff\xfe").code, PARSE_ERROR);
        assert_eq!(err(b"[1]").code, INVALID_REQUEST);
        assert_eq!(err(b"42").code, INVALID_REQUEST);
        assert_eq!(err(br#"{"method":"ps","id":1}"#).code, INVALID_REQUEST);
        let e = err(br#"{"jsonrpc":"2.0","method":7,"id":"q"}"#);
        assert_eq!((e.code, e.id), (INVALID_REQUEST, json!("q")));
        assert_eq!(
            err(br#"{"jsonrpc":"2.0","method":"ps","id":{}}"#).code,
            INVALID_REQUEST
        );
        assert_eq!(
            err(br#"{"jsonrpc":"2.0","method":"ps","params":3,"id":1}"#).code,
            INVALID_REQUEST
        );
        for p in [r#"{"a":1}"#, "[true]", "[null]", "[[[1]]]", r#"[{"a":1}]"#] {
            let s = format!(r#"{{"jsonrpc":"2.0","method":"ps","params":{p},"id":1}}"#);
            let e = err(s.as_bytes());
            assert_eq!((e.code, e.id), (INVALID_PARAMS, json!(1)), "{p}");
        }
    }

    #[test]
    fn size_and_depth_are_bounded() {
        let big = vec![b' '; MAX_REQUEST + 1];
        assert_eq!(err(&big).code, INVALID_REQUEST);
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert_eq!(err(&deep.as_bytes()[..MAX_REQUEST]).code, PARSE_ERROR);
        // Brackets inside strings do not count.
        let s = format!(
            r#"{{"jsonrpc":"2.0","method":"print","params":["{}\"["],"id":1}}"#,
            "[".repeat(100)
        );
        assert_eq!(req(&s).params.len(), 1);
    }

    #[test]
    fn responses() {
        assert_eq!(
            encode(&result(json!(1), json!(["a"]))),
            b"{\"id\":1,\"jsonrpc\":\"2.0\",\"result\":[\"a\"]}\n"
        );
        let e = RpcError::new(json!("x"), METHOD_NOT_FOUND, "method not found")
            .with_data(json!({"status": 500}));
        assert_eq!(e.to_value()["error"]["data"]["status"], 500);
        assert_eq!(e.to_value()["id"], "x");
    }
}
