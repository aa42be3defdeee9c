//! tm's management commands (FIFO and unix socket): starting UAC
//! transactions (`t_uac_from` of SER 0.8, `t_uac_dlg` of 0.9) and
//! cancelling them (`t_uac_cancel`), answering
//! transactions handed to applications by `t_write_*` (`t_reply`), and
//! the counters (`t_stats`, `t_hash`).
//!
//! A UAC command answers only its errors at once; the transaction's end
//! is reported later to the request's reply target, from whichever
//! process completes it (a worker on the final reply, the timer on 408).

use crate::ctl::{CmdCtx, CtlCmd, Dialect, Outcome, ParamError, Params, Reply, ReplyTarget};
use crate::sip::{HdrKind, Msg};
use crate::tm::callbacks::{self, UacOutcome};
use crate::tm::dialog;
use crate::tm::reply::build_reply_with;
use crate::tm::uac::{self, UacError, UacRequest};
use crate::tm::{driver, relay, store};

pub static COMMANDS: &[CtlCmd] = &[
    CtlCmd {
        name: "t_uac_from",
        handler: t_uac_from,
    },
    CtlCmd {
        name: "t_uac_dlg",
        handler: t_uac_dlg,
    },
    CtlCmd {
        name: "t_uac_cancel",
        handler: t_uac_cancel,
    },
    CtlCmd {
        name: "t_reply",
        handler: t_reply,
    },
    CtlCmd {
        name: "t_stats",
        handler: t_stats,
    },
    CtlCmd {
        name: "t_hash",
        handler: t_hash,
    },
];

/// Report kinds (see `callbacks::register_report`).
const REPORT_STATUS: u32 = 0x7475_6601;
const REPORT_DIALOG: u32 = 0x7475_6602;

/// Register the report writers; from tm's mod_init, before the fork.
pub fn register_reports() {
    callbacks::register_report(REPORT_STATUS, report_status);
    callbacks::register_report(REPORT_DIALOG, report_dialog);
}

type R = Result<Outcome, ParamError>;

/// The reason phrase of a received reply, or the one tm gives its own.
fn status_line(o: &UacOutcome<'_>) -> Reply {
    let reason = match Msg::parse(o.reply.to_vec()) {
        Ok(m) if !m.is_request() => String::from_utf8_lossy(m.reason()).into_owned(),
        _ => String::from_utf8_lossy(driver::reason_of(o.code)).into_owned(),
    };
    Reply::new(o.code, reason)
}

fn deliver(o: &UacOutcome<'_>, reply: Reply) {
    let Some(target) = ReplyTarget::decode(o.param) else {
        return;
    };
    let dialect = match target {
        ReplyTarget::Unix(_) => Dialect::Unix,
        ReplyTarget::File(_) => Dialect::Fifo,
    };
    crate::ctl::deliver_later(&target, &reply, dialect);
}

/// `t_uac_from`: the final status line only.
fn report_status(o: &UacOutcome<'_>) {
    deliver(o, status_line(o));
}

/// `t_uac_dlg`: the status line; for a reply received, the dialog lines
/// (remote target, next hop, route set, `.` when absent — three `.` when
/// no dialog was set up) and the reply's headers and body.
fn report_dialog(o: &UacOutcome<'_>) {
    let mut reply = status_line(o);
    if !o.reply.is_empty() {
        reply.body = dialog_lines(o.code, o.reply);
        let text = String::from_utf8_lossy(o.reply);
        let rest = text.split_once('\n').map(|(_, r)| r).unwrap_or("");
        reply.body.push(
            rest.replace("\r\n", "\n")
                .trim_end_matches('\n')
                .to_string(),
        );
    }
    deliver(o, reply);
}

fn dialog_lines(code: u16, reply: &[u8]) -> Vec<String> {
    let dots = || vec![".".to_string(), ".".into(), ".".into()];
    let Ok(m) = Msg::parse(reply.to_vec()) else {
        return dots();
    };
    let confirmed = (200..300).contains(&code)
        && m.cseq()
            .map(|c| c.method == crate::sip::Method::Invite)
            .unwrap_or(false);
    if !confirmed {
        return dots();
    }
    let target = dialog::remote_target(&m)
        .map(|u| String::from_utf8_lossy(&u).into_owned())
        .unwrap_or_else(|| ".".into());
    let routes: Vec<String> = dialog::route_set(&m)
        .iter()
        .map(|u| format!("<{}>", String::from_utf8_lossy(u)))
        .collect();
    let next_hop = routes
        .first()
        .map(|r| r.trim_start_matches('<').trim_end_matches('>').to_string())
        .unwrap_or_else(|| ".".into());
    let route = if routes.is_empty() {
        ".".to_string()
    } else {
        format!("Route: {}", routes.join(", "))
    };
    vec![target, next_hop, route]
}

fn uac_error(e: UacError) -> Outcome {
    let code = match e {
        UacError::BadRequest(_) => 400,
        UacError::Destination => 400,
        _ => 500,
    };
    Reply::new(code, format!("fifo_uac_error: {e}")).into()
}

/// The classified header set of a `t_uac_*` request.
#[derive(Debug, Default)]
struct HeaderSet {
    from: Option<String>,
    to: Option<String>,
    call_id: Option<String>,
    cseq: Option<String>,
    content_type: bool,
    content_length: bool,
    /// Everything else, CRLF-terminated, `!!` not yet substituted.
    other: String,
}

fn classify(lines: &[String]) -> Result<HeaderSet, String> {
    let mut hs = HeaderSet::default();
    for l in lines {
        let Some((name, value)) = l.split_once(':') else {
            return Err(format!("header line without ':': {l:?}"));
        };
        let value = value.trim().to_string();
        match HdrKind::from_name(name.trim().as_bytes()) {
            HdrKind::From => hs.from = Some(value),
            HdrKind::To => hs.to = Some(value),
            HdrKind::CallId => hs.call_id = Some(value),
            HdrKind::CSeq => hs.cseq = Some(value),
            HdrKind::ContentLength => hs.content_length = true,
            kind => {
                if kind == HdrKind::ContentType {
                    hs.content_type = true;
                }
                hs.other.push_str(l);
                hs.other.push_str("\r\n");
            }
        }
    }
    Ok(hs)
}

/// Start `req`; its end is reported as `kind` to the request's reply
/// target, if the request named one (then nothing is answered now).
fn run_uac(ctx: &CmdCtx<'_>, req: &UacRequest<'_>, kind: u32) -> Outcome {
    let (kind, param) = match ctx.target {
        Some(t) => (kind, t.encode()),
        None => (0, Vec::new()),
    };
    match uac::t_uac(req, kind, &param) {
        Ok(_) if ctx.target.is_some() => Outcome::Later,
        Ok(_) => Reply::new(200, "fifo_uac: transaction started").into(),
        Err(e) => uac_error(e),
    }
}

/// `ip:port` of the socket a request to `hop` leaves from, for `!!`.
fn substitute_bangs(headers: &str, hop: &str) -> String {
    if !headers.contains("!!") {
        return headers.to_string();
    }
    match uac::outgoing_socket(hop) {
        Some(s) => headers.replace("!!", &format!("{}:{}", s.host_text(), s.listen.addr.port())),
        None => headers.to_string(),
    }
}

/// A `t_uac_from` request as read from its lines, before anything is sent.
#[derive(Debug)]
struct UacFrom {
    method: String,
    /// The destination: R-URI and To.
    dst: String,
    from: String,
    to: String,
    /// Headers other than those tm writes itself, `\r\n`-terminated.
    headers: String,
    body: String,
    call_id: Option<String>,
}

impl UacFrom {
    /// The request to send, with `headers` (ours, after `!!` substitution).
    fn request<'a>(&'a self, headers: &'a str) -> UacRequest<'a> {
        UacRequest {
            method: &self.method,
            ruri: &self.dst,
            from: &self.from,
            to: &self.to,
            next_hop: None,
            headers,
            body: self.body.as_bytes(),
            call_id: self.call_id.as_deref(),
            cseq: None,
        }
    }
}

/// SER 0.8: `method`, sender URI, destination URI (R-URI and To),
/// headers up to an empty line, body up to `.`. A sender of `.` or
/// nothing means `default_from`. `Ok(Err(reply))`: refused with `reply`.
fn read_t_uac_from(
    p: &mut Params<'_>,
    default_from: impl FnOnce() -> String,
) -> Result<Result<UacFrom, Reply>, ParamError> {
    let method = p.nonempty("method")?;
    let from = p.line("sender URI")?;
    let dst = p.nonempty("destination URI")?;
    let headers = p.header_set("headers")?;
    let body = p.body("body")?;
    let hs = match classify(&headers) {
        Ok(h) => h,
        Err(e) => return Ok(Err(Reply::new(400, format!("fifo_uac_error: {e}")))),
    };
    let from = if from.is_empty() || from == "." {
        default_from()
    } else if from.contains('<') {
        from
    } else {
        format!("<{from}>")
    };
    Ok(Ok(UacFrom {
        method,
        to: format!("<{dst}>"),
        dst,
        from,
        headers: hs.other,
        body,
        call_id: hs.call_id,
    }))
}

fn t_uac_from(p: &mut Params<'_>, ctx: &CmdCtx<'_>) -> R {
    let default_from = || {
        crate::tm::env::env()
            .map(|e| e.params.uac_from.clone())
            .unwrap_or_default()
    };
    let u = match read_t_uac_from(p, default_from)? {
        Ok(u) => u,
        Err(refused) => return Ok(refused.into()),
    };
    let extra = substitute_bangs(&u.headers, &u.dst);
    Ok(run_uac(ctx, &u.request(&extra), REPORT_STATUS))
}

/// SER 0.9: `method`, R-URI, next hop (`.` = the R-URI), headers (at
/// least From and To), body up to `.`.
fn t_uac_dlg(p: &mut Params<'_>, ctx: &CmdCtx<'_>) -> R {
    let method = p.nonempty("method")?;
    let ruri = p.nonempty("request URI")?;
    let hop = p.nonempty("next hop")?;
    let headers = p.header_set("headers")?;
    let body = p.body("body")?;
    let bad = |why: String| -> R { Ok(Reply::new(400, format!("fifo_uac_error: {why}")).into()) };
    let hs = match classify(&headers) {
        Ok(h) => h,
        Err(e) => return bad(e),
    };
    let (Some(from), Some(to)) = (&hs.from, &hs.to) else {
        return bad("From and To headers are required".into());
    };
    if !body.is_empty() && !hs.content_type {
        return bad("a body needs Content-Type".into());
    }
    if hs.content_length {
        return bad("Content-Length is computed here; do not give it".into());
    }
    let cseq = match &hs.cseq {
        None => None,
        Some(v) => {
            let mut it = v.split_whitespace();
            let n = it.next().and_then(|n| n.parse::<u32>().ok());
            let m = it.next();
            match (n, m) {
                (Some(n), None) => Some(n),
                (Some(n), Some(m)) if m.eq_ignore_ascii_case(&method) => Some(n),
                (Some(_), Some(_)) => return bad("CSeq method differs from the request's".into()),
                _ => return bad(format!("CSeq {v:?} is not a number")),
            }
        }
    };
    let next_hop = (hop != ".").then_some(hop.as_str());
    let extra = substitute_bangs(&hs.other, next_hop.unwrap_or(&ruri));
    let req = UacRequest {
        method: &method,
        ruri: &ruri,
        from,
        to,
        next_hop,
        headers: &extra,
        body: body.as_bytes(),
        call_id: hs.call_id.as_deref(),
        cseq,
    };
    Ok(run_uac(ctx, &req, REPORT_DIALOG))
}

/// `t_uac_cancel` (SER 0.9): cancel the INVITE transaction named by its
/// Call-ID and CSeq number (one `t_uac_dlg` started, typically). Its
/// pending branches are CANCELed as `cancel_b_method` says; the end of
/// the INVITE is reported to whoever started it, as usual.
fn t_uac_cancel(p: &mut Params<'_>, _: &CmdCtx<'_>) -> R {
    let call_id = p.nonempty("Call-ID")?;
    let cseq = p.nonempty("CSeq number")?;
    let Ok(cseq) = cseq.trim().parse::<u32>() else {
        return Ok(Reply::new(
            400,
            format!("fifo_uac_cancel: CSeq must be a number, not {cseq:?}"),
        )
        .into());
    };
    let Some(env) = crate::tm::env::env() else {
        return Ok(Reply::new(500, "fifo_uac_cancel: tm is not loaded").into());
    };
    let Some(cref) = store::lookup_invite(call_id.trim().as_bytes(), cseq) else {
        return Ok(Reply::new(481, "fifo_uac_cancel: no such transaction").into());
    };
    relay::cancel_cell(env, &cref);
    Ok(Reply::new(200, "fifo_uac_cancel succeeded").into())
}

/// The application's answer to a transaction `t_write_*` handed to it:
/// code, reason, `hash:label`, To-tag, headers, body.
fn t_reply(p: &mut Params<'_>, _: &CmdCtx<'_>) -> R {
    let code = p.nonempty("code")?;
    let reason = p.nonempty("reason")?;
    let id = p.nonempty("transaction id")?;
    let to_tag = p.line("To-tag")?;
    let headers = p.header_set("headers")?;
    let body = p.body("body")?;
    let bad = |what: &'static str, found: &str| -> R {
        Ok(Reply::new(400, format!("fifo_t_reply: {what} {found:?}")).into())
    };
    let code: u16 = match code.parse() {
        Ok(c) if (100..=699).contains(&c) => c,
        _ => return bad("status code must be 100..699, not", &code),
    };
    let Some((hash, label)) = id
        .split_once(':')
        .and_then(|(h, l)| Some((h.trim().parse::<u32>().ok()?, l.trim().parse::<u32>().ok()?)))
    else {
        return bad("transaction id must be <hash>:<label>, not", &id);
    };
    let (Some(env), Some(cref)) = (crate::tm::env::env(), store::lookup_id(hash, label)) else {
        return Ok(Reply::new(481, "fifo_t_reply: no such transaction").into());
    };
    let cell = cref.cell();
    let Ok(req) = Msg::parse(cell.req_bytes(env.region).to_vec()) else {
        return Ok(Reply::new(500, "fifo_t_reply: reply failed").into());
    };
    let mut extra = String::new();
    for h in &headers {
        extra.push_str(h);
        extra.push_str("\r\n");
    }
    let tag = (!to_tag.is_empty() && to_tag != ".").then_some(to_tag.as_str());
    let (bytes, code) = match build_reply_with(
        env,
        &req,
        cell.src.addr(),
        code,
        reason.as_bytes(),
        extra.as_bytes(),
        body.as_bytes(),
        tag,
    ) {
        Ok(b) => (b.bytes, b.code),
        Err(_) => return Ok(Reply::new(500, "fifo_t_reply: reply failed").into()),
    };
    Ok(if relay::send_local_reply(env, &cref, code, &bytes) {
        Reply::new(200, "fifo_t_reply succeeded")
    } else {
        Reply::new(500, "fifo_t_reply: reply failed")
    }
    .into())
}

fn t_stats(_: &mut Params<'_>, _: &CmdCtx<'_>) -> R {
    let s = crate::tm::stats::snapshot();
    let c = &s.completed;
    Ok(Reply::ok(vec![
        format!(
            "Current: {} ({} waiting) Total: {} ({} local)",
            s.current(),
            s.waiting,
            s.created,
            s.local
        ),
        format!("Replied localy: {}", s.replied_locally),
        format!(
            "Completion status 6xx: {}, 5xx: {}, 4xx: {}, 3xx: {},2xx: {}",
            c[6], c[5], c[4], c[3], c[2]
        ),
    ])
    .into())
}

/// Every bucket's load. The unix socket lists only buckets ever used, so
/// that the reply fits one datagram.
fn t_hash(_: &mut Params<'_>, ctx: &CmdCtx<'_>) -> R {
    let n = 1u32 << store::TABLE_BITS;
    let mut body = Vec::with_capacity(n as usize + 1);
    body.push("\tcurrent\ttotal".to_string());
    for i in 0..n {
        let (cur, total) = store::bucket_counters(i);
        if ctx.dialect == Dialect::Unix && cur == 0 && total == 0 {
            continue;
        }
        body.push(format!("{i}.\t{cur}\t{total}"));
    }
    Ok(Reply::ok(body).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_sets_are_classified() {
        let lines: Vec<String> = [
            "From: <sip:a@b>",
            "t: <sip:c@d>",
            "i: x@y",
            "CSeq: 5 MESSAGE",
            "Content-Type: text/plain",
            "X: !!",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let hs = classify(&lines).unwrap();
        assert_eq!(hs.from.as_deref(), Some("<sip:a@b>"));
        assert_eq!(hs.to.as_deref(), Some("<sip:c@d>"));
        assert_eq!(hs.call_id.as_deref(), Some("x@y"));
        assert_eq!(hs.cseq.as_deref(), Some("5 MESSAGE"));
        assert!(hs.content_type && !hs.content_length);
        assert_eq!(hs.other, "Content-Type: text/plain\r\nX: !!\r\n");
        assert!(classify(&["no colon".to_string()]).is_err());
    }

    fn read_from(text: &str) -> Result<UacFrom, Reply> {
        let mut lines = crate::ctl::request::TextLines::new(text);
        let mut p = Params::new(&mut lines, Dialect::Fifo);
        read_t_uac_from(&mut p, || "<sip:default@ser>".into()).unwrap()
    }

    #[test]
    fn t_uac_from_sends_the_body_it_was_given() {
        let u = read_from(
            "MESSAGE\nsip:alice@example.test\nsip:bob@127.0.0.1:5070\nContent-Type: text/plain\n\nhello\nworld\n.\n",
        )
        .unwrap();
        let req = u.request(&u.headers);
        assert_eq!(req.method, "MESSAGE");
        assert_eq!(req.ruri, "sip:bob@127.0.0.1:5070");
        assert_eq!(req.from, "<sip:alice@example.test>");
        assert_eq!(req.to, "<sip:bob@127.0.0.1:5070>");
        assert_eq!(req.headers, "Content-Type: text/plain\r\n");
        assert_eq!(req.body, b"hello\r\nworld\r\n");
    }

    #[test]
    fn t_uac_from_without_sender_or_body_uses_the_defaults() {
        let u = read_from("OPTIONS\n.\nsip:bob@127.0.0.1\n\n.\n").unwrap();
        let req = u.request(&u.headers);
        assert_eq!(req.from, "<sip:default@ser>");
        assert_eq!(req.body, b"");
        assert!(read_from("OPTIONS\n.\nsip:bob@127.0.0.1\nno colon here\n\n.\n").is_err());
    }

    #[test]
    fn dialog_lines_of_a_2xx_to_invite() {
        let reply = b"SIP/2.0 200 OK\r\nRecord-Route: <sip:p2;lr>, <sip:p1;lr>\r\n\
From: <sip:a@b>;tag=1\r\nTo: <sip:c@d>;tag=2\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\n\
Contact: <sip:c@10.0.0.1:5070>\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(
            dialog_lines(200, reply),
            vec![
                "sip:c@10.0.0.1:5070",
                "sip:p1;lr",
                "Route: <sip:p1;lr>, <sip:p2;lr>"
            ]
        );
        let msg = b"SIP/2.0 200 OK\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>;tag=2\r\n\
Call-ID: x\r\nCSeq: 1 MESSAGE\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(dialog_lines(200, msg), vec![".", ".", "."]);
    }
}
