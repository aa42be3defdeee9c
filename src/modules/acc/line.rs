//! The syslog accounting line of SER 0.9's acc module, built from raw
//! message bytes: `ACC: <event>: attr=value, attr=value, ...\n`, one
//! `attr=value` per `log_fmt` letter, `n/a` where the message lacks it.

use crate::sip::{parse_uri, Msg};

/// SER 0.9's default `log_fmt`: method, in-uri, out-uri, call-id, from, status.
pub const DEFAULT_FMT: &str = "miocfs";
/// Every letter `log_fmt` may hold.
pub const ALL_FMT: &str = "cdfimorstup01FTUSnDX";

const NA: &[u8] = b"n/a";

/// What the line reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// `acc_log_request` from the script.
    Request,
    /// A transaction answered (or, with `failed_transactions`, failed).
    Answered,
    /// A missed call (negative INVITE outcome with `log_missed_flag`).
    Missed,
    /// An end-to-end ACK (`report_ack`).
    Acked,
}

impl Event {
    fn text(self) -> &'static str {
        match self {
            Event::Request => "request accounted: ",
            Event::Answered => "transaction answered: ",
            Event::Missed => "call missed: ",
            Event::Acked => "request acknowledged: ",
        }
    }
}

/// The messages and values one line is built from.
pub struct Input<'a> {
    /// The accounted request (the transaction's request, or the ACK).
    pub req: &'a Msg,
    /// Where the To header comes from (the reply, when there is one);
    /// `None` = the request's own To.
    pub to: Option<&'a Msg>,
    /// The R-URI the request went out with, when rewritten.
    pub out_uri: Option<&'a [u8]>,
    /// The status text: a code (`200`), `code reason` for missed calls, or
    /// the script's comment.
    pub phrase: &'a [u8],
}

/// Is every letter of `fmt` one acc knows?
pub fn valid_fmt(fmt: &str) -> bool {
    fmt.len() <= ALL_FMT.len() && fmt.chars().all(|c| ALL_FMT.contains(c))
}

fn or_na(v: Option<&[u8]>) -> &[u8] {
    match v {
        Some(x) if !x.is_empty() => x,
        _ => NA,
    }
}

fn uri_user(uri: &[u8]) -> Option<&[u8]> {
    parse_uri(uri).ok()?.user.map(|s| s.get(uri))
}

fn uri_host(uri: &[u8]) -> Option<&[u8]> {
    let u = parse_uri(uri).ok()?;
    Some(u.host.get(uri))
}

/// One `(attribute, value)` for a `log_fmt` letter (the SQL sink's
/// values too).
pub(super) fn field<'a>(c: char, inp: &Input<'a>) -> (&'static str, &'a [u8]) {
    let req = inp.req;
    let buf = req.buf();
    let tomsg = inp.to.unwrap_or(req);
    let from = req.from().ok();
    let from_uri = from.map(|f| f.uri.get(buf));
    let to_uri = req.to().ok().map(|t| t.uri.get(buf));
    match c {
        'c' => ("call_id", or_na(req.call_id().ok())),
        'd' => (
            "totag",
            or_na(
                tomsg
                    .to()
                    .ok()
                    .and_then(|t| t.tag)
                    .map(|s| s.get(tomsg.buf())),
            ),
        ),
        'f' => (
            "from",
            or_na(req.header(crate::sip::HdrKind::From).map(|h| req.value(h))),
        ),
        'i' => ("i-uri", or_na(Some(req.ruri()))),
        'm' => ("method", or_na(Some(req.method_bytes()))),
        'o' => ("o-uri", or_na(inp.out_uri.or(Some(req.ruri())))),
        'r' => (
            "fromtag",
            or_na(from.and_then(|f| f.tag).map(|s| s.get(buf))),
        ),
        's' => ("code", or_na(Some(inp.phrase))),
        'S' => ("code", or_na(inp.phrase.get(..3))),
        't' => (
            "to",
            or_na(
                tomsg
                    .header(crate::sip::HdrKind::To)
                    .map(|h| tomsg.value(h)),
            ),
        ),
        // Digest credentials: this server has no auth module, so the
        // user id is never known; `U` falls back to the From URI as SER's does.
        'u' => ("uid", NA),
        'U' | 'F' => ("fromuri", or_na(from_uri)),
        'p' => ("userpart", or_na(uri_user(req.ruri()))),
        '0' => ("fromuser", or_na(from_uri.and_then(uri_user))),
        '1' => ("touser", or_na(to_uri.and_then(uri_user))),
        'T' => ("touri", or_na(to_uri)),
        'n' => (
            "cseq",
            or_na(req.header(crate::sip::HdrKind::CSeq).map(|h| {
                let v = req.value(h);
                let end = v
                    .iter()
                    .position(|b| !b.is_ascii_digit())
                    .unwrap_or(v.len());
                v.get(..end).unwrap_or(v)
            })),
        ),
        'D' => ("domain", or_na(uri_host(req.ruri()))),
        'X' => ("fromdomain", or_na(from_uri.and_then(uri_host))),
        _ => ("unknown", NA),
    }
}

/// The whole line, `\n`-terminated (SER writes it so to stderr).
pub fn format(event: Event, fmt: &str, inp: &Input<'_>) -> String {
    let mut out = String::from("ACC: ");
    out.push_str(event.text());
    for (i, c) in fmt.chars().enumerate() {
        let (attr, val) = field(c, inp);
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str(attr);
        out.push('=');
        out.push_str(&String::from_utf8_lossy(val));
    }
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const INVITE: &[u8] = b"INVITE sip:bob@example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK1\r\n\
From: \"Alice\" <sip:alice@atlanta.com>;tag=ft1\r\n\
To: <sip:bob@example.com>\r\n\
Call-ID: cid-42@10.0.0.1\r\n\
CSeq: 7 INVITE\r\n\
Content-Length: 0\r\n\r\n";

    const OK: &[u8] = b"SIP/2.0 200 OK\r\n\
Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK1\r\n\
From: \"Alice\" <sip:alice@atlanta.com>;tag=ft1\r\n\
To: <sip:bob@example.com>;tag=tt9\r\n\
Call-ID: cid-42@10.0.0.1\r\n\
CSeq: 7 INVITE\r\n\
Content-Length: 0\r\n\r\n";

    fn msg(b: &[u8]) -> Msg {
        Msg::parse(b.to_vec()).unwrap()
    }

    #[test]
    fn default_format_answered() {
        let req = msg(INVITE);
        let rpl = msg(OK);
        let line = format(
            Event::Answered,
            DEFAULT_FMT,
            &Input {
                req: &req,
                to: Some(&rpl),
                out_uri: Some(b"sip:bob@192.0.2.7:5070"),
                phrase: b"200",
            },
        );
        assert_eq!(
            line,
            "ACC: transaction answered: method=INVITE, i-uri=sip:bob@example.com, \
o-uri=sip:bob@192.0.2.7:5070, call_id=cid-42@10.0.0.1, \
from=\"Alice\" <sip:alice@atlanta.com>;tag=ft1, code=200\n"
        );
    }

    #[test]
    fn every_letter() {
        let req = msg(INVITE);
        let rpl = msg(OK);
        let inp = Input {
            req: &req,
            to: Some(&rpl),
            out_uri: None,
            phrase: b"404 Not Found",
        };
        let line = format(Event::Missed, "cdrtSsnp01FTUuDX", &inp);
        assert_eq!(
            line,
            "ACC: call missed: call_id=cid-42@10.0.0.1, totag=tt9, fromtag=ft1, \
to=<sip:bob@example.com>;tag=tt9, code=404, code=404 Not Found, cseq=7, userpart=bob, \
fromuser=alice, touser=bob, fromuri=sip:alice@atlanta.com, touri=sip:bob@example.com, \
fromuri=sip:alice@atlanta.com, uid=n/a, domain=example.com, fromdomain=atlanta.com\n"
        );
        // Without a reply, To and its (missing) tag come from the request.
        let inp = Input { to: None, ..inp };
        assert_eq!(
            format(Event::Request, "dto", &inp),
            "ACC: request accounted: totag=n/a, to=<sip:bob@example.com>, o-uri=sip:bob@example.com\n"
        );
    }

    #[test]
    fn missing_values_are_na() {
        let req = msg(
            b"OPTIONS sip:x.org SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKa\r\n\
From: <sip:a@b>\r\nTo: <sip:x.org>\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\n\r\n",
        );
        let inp = Input {
            req: &req,
            to: None,
            out_uri: None,
            phrase: b"",
        };
        assert_eq!(
            format(Event::Acked, "rpS1s", &inp),
            "ACC: request acknowledged: fromtag=n/a, userpart=n/a, code=n/a, touser=n/a, code=n/a\n"
        );
    }

    #[test]
    fn fmt_validation() {
        assert!(valid_fmt(DEFAULT_FMT));
        assert!(valid_fmt(ALL_FMT));
        assert!(!valid_fmt("miocfz"));
    }
}
