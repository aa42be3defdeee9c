//! Running one JSON-RPC request on the FIFO's command table.

use std::collections::VecDeque;

use serde_json::{json, Value};

use super::codec::{self, Request, RpcError};
use super::names;
use crate::ctl::registry::{CmdCtx, Registry};
use crate::ctl::reply::{Outcome, Reply};
use crate::ctl::request::{Dialect, LineSource, NoLine, ParamError, Params};
use crate::ctl::target::ReplyTarget;

/// The parameter lines of one request.
struct ParamLines(VecDeque<String>);

impl LineSource for ParamLines {
    fn next_line(&mut self) -> Result<String, NoLine> {
        self.0.pop_front().ok_or(NoLine::End)
    }
}

/// What serving a request produced.
#[derive(Debug, PartialEq)]
pub enum Answer {
    /// The response to send now.
    Now(Value),
    /// The command reports later to the request's target (the response
    /// is made from the report by [`report`]).
    Later,
    /// A notification: nothing to send.
    Nothing,
}

/// Runs `req`. `target` is where a command that answers later reports
/// (the caller listens there); a notification never gets one.
pub fn serve(registry: &Registry, req: &Request, target: Option<&ReplyTarget>) -> Answer {
    let id = req.id.clone().unwrap_or(Value::Null);
    let out = run(registry, req, target.filter(|_| req.id.is_some()));
    match (out, &req.id) {
        (_, None) => Answer::Nothing,
        (Ok(None), Some(_)) => Answer::Later,
        (Ok(Some(v)), Some(_)) => Answer::Now(codec::result(id, v)),
        (Err(e), Some(_)) => Answer::Now(RpcError { id, ..e }.to_value()),
    }
}

/// The result (`None`: reported later) or the error (its id is set by
/// the caller).
fn run(
    registry: &Registry,
    req: &Request,
    target: Option<&ReplyTarget>,
) -> Result<Option<Value>, RpcError> {
    let err = |code, msg: String| RpcError::new(Value::Null, code, msg);
    if req.method == names::LIST_METHODS {
        return Ok(Some(json!(names::list(&registry.names()))));
    }
    if req.method == names::METHOD_HELP {
        let [m] = &req.params[..] else {
            return Err(err(
                codec::INVALID_PARAMS,
                "invalid params: system.methodHelp takes one method name".into(),
            ));
        };
        return names::help(m, |c| registry.find(c).is_some())
            .map(|h| Some(json!(h)))
            .ok_or_else(|| err(codec::METHOD_NOT_FOUND, format!("method not found: {m}")));
    }
    let cmd_name = names::command_of(&req.method);
    let Some(cmd) = registry.find(cmd_name) else {
        return Err(err(
            codec::METHOD_NOT_FOUND,
            format!("method not found: {}", req.method),
        ));
    };
    let ctx = CmdCtx {
        dialect: Dialect::Unix,
        target,
        registry,
    };
    let mut src = ParamLines(req.params.iter().cloned().collect());
    let mut params = Params::new(&mut src, Dialect::Unix);
    match (cmd.handler)(&mut params, &ctx) {
        Ok(Outcome::Later) => Ok(None),
        Ok(Outcome::Reply(r)) if (200..300).contains(&r.code) => Ok(Some(names::result_of(
            names::method_shape(&req.method),
            &r.text,
            &r.body,
        ))),
        Ok(Outcome::Reply(r)) => Err(failed(&r)),
        Err(e @ (ParamError::Missing(_) | ParamError::Bad { .. })) => Err(err(
            codec::INVALID_PARAMS,
            format!("invalid params: {}: {e}", cmd.name),
        )),
        // Lines cannot stall or be overtaken here: they are all present.
        Err(e) => Err(err(
            codec::INVALID_PARAMS,
            format!("invalid params: {}: {e}", cmd.name),
        )),
    }
}

/// A command that answered with a failure status. `400` is how every
/// command says its parameter lines were wrong (`ul_*` check their own),
/// so it is JSON-RPC's invalid params; the status travels in `data` in
/// either case.
fn failed(r: &Reply) -> RpcError {
    let code = if r.code == 400 {
        codec::INVALID_PARAMS
    } else {
        codec::COMMAND_FAILED
    };
    RpcError::new(Value::Null, code, format!("{} {}", r.code, r.text))
        .with_data(json!({"status": r.code, "reason": r.text, "lines": r.body}))
}

/// The response to a later report: the datagram a worker or the timer
/// delivered to the request's target, in the unix socket's reply text.
pub fn report(id: Value, datagram: &[u8]) -> Value {
    let text = String::from_utf8_lossy(datagram);
    let mut lines = text
        .lines()
        .map(|l| crate::ctl::request::trim_line(l).to_string());
    let first = lines.next().unwrap_or_default();
    let (code, reason) = first.split_once(' ').unwrap_or((first.as_str(), ""));
    match code.parse::<u16>() {
        Ok(code) => codec::result(
            id,
            names::report_result(code, reason, &lines.collect::<Vec<_>>()),
        ),
        Err(_) => RpcError::new(
            id,
            codec::COMMAND_FAILED,
            format!("malformed report: {first:?}"),
        )
        .to_value(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ctl::request::Dialect;

    fn call(r: &Registry, method: &str, params: &[&str]) -> Value {
        let req = Request {
            method: method.into(),
            params: params.iter().map(|s| s.to_string()).collect(),
            id: Some(json!(1)),
        };
        match serve(r, &req, None) {
            Answer::Now(v) => v,
            other => panic!("{method}: {other:?}"),
        }
    }

    #[test]
    fn fifo_names_and_aliases_run_the_same_command() {
        let r = Registry::with_core();
        let a = call(&r, "uptime", &[]);
        let b = call(&r, "core.uptime", &[]);
        assert_eq!(a["result"].as_array().map(Vec::len), Some(3), "{a}");
        assert!(b["result"]["uptime"].is_u64(), "{b}");
        assert_eq!(call(&r, "print", &["hi"])["result"], json!(["hi"]));
        assert_eq!(call(&r, "core.prints", &["hi"])["result"], json!(["hi"]));
        let l = call(&r, "system.listMethods", &[]);
        let l = l["result"].as_array().unwrap();
        assert!(l.contains(&json!("ps")) && l.contains(&json!("core.ps")));
        let h = call(&r, "system.methodHelp", &["core.ps"]);
        assert!(h["result"].as_str().unwrap().contains("'ps'"));
    }

    #[test]
    fn errors() {
        let r = Registry::with_core();
        let e = call(&r, "nosuch", &[]);
        assert_eq!(e["error"]["code"], codec::METHOD_NOT_FOUND);
        assert_eq!(e["id"], 1);
        // An alias of a command not loaded is not found either.
        assert_eq!(
            call(&r, "ul.dump", &[])["error"]["code"],
            codec::METHOD_NOT_FOUND
        );
        assert_eq!(
            call(&r, "print", &[])["error"]["code"],
            codec::INVALID_PARAMS
        );
        assert_eq!(
            call(&r, "system.methodHelp", &[])["error"]["code"],
            codec::INVALID_PARAMS
        );
        // A command's own failure carries its status and reason.
        let e = call(&r, "dns.view", &[]);
        assert_eq!(e["error"]["code"], codec::COMMAND_FAILED);
        assert_eq!(e["error"]["data"]["status"], 500);
        assert!(e["error"]["message"].as_str().unwrap().starts_with("500 "));
        // A command's own 400 (bad parameter lines) is invalid params.
        let e = failed(&Reply::new(400, "ul_rm: table name expected"));
        assert_eq!(e.code, codec::INVALID_PARAMS);
        assert_eq!(e.data.unwrap()["status"], 400);
        assert_eq!(failed(&Reply::new(404, "x")).code, codec::COMMAND_FAILED);
    }

    #[test]
    fn notifications_get_nothing() {
        let r = Registry::with_core();
        let req = Request {
            method: "print".into(),
            params: vec!["x".into()],
            id: None,
        };
        assert_eq!(serve(&r, &req, None), Answer::Nothing);
    }

    #[test]
    fn reports_become_results() {
        let rep = Reply::new(404, "Not Found").with_body(vec!["a".into()]);
        let v = report(json!(3), &rep.render(Dialect::Unix));
        assert_eq!(
            v["result"],
            json!({"status": 404, "reason": "Not Found", "lines": ["a"]})
        );
        assert_eq!(v["id"], 3);
        assert_eq!(
            report(json!(3), b"junk")["error"]["code"],
            codec::COMMAND_FAILED
        );
    }
}
