//! When acc reports: the script's `acc_log_request` and the tm callbacks.
//!
//! tm fires `Completed` (final reply sent upstream), `OnFailure` (a
//! failure route is about to run) and `E2eAckIn` without the cell's reply
//! lock held, so taking it here is safe; the events fired under the lock
//! (`ResponseFwded`, `RequestFwded`) are not used — which is why a 183
//! with `early_media` is not reported yet (the flags live behind the lock).

use super::line::{self, Event, Input};
use super::{db, AccCfg};
use crate::route::MsgCtx;
use crate::sip::{Method, Msg};
use crate::tm::callbacks::{CbEvent, CbParams};
use crate::tm::cell::Cell;
use crate::tm::fsm::flags as txflags;

fn flag_on(flags: u32, flag: Option<u32>) -> bool {
    flag.is_some_and(|f| f < 32 && flags & (1 << f) != 0)
}

fn emit(cfg: &AccCfg, text: &str) {
    crate::logging::script_log(cfg.log_level, text);
}

/// `acc_log_request("comment")`: the current request, now. 1, or −1 when
/// the request is a CANCEL that is not to be reported.
pub(super) fn log_request(cfg: &AccCfg, ctx: &MsgCtx<'_>, comment: &[u8]) -> i32 {
    if ctx.msg.method() == Method::Cancel && !cfg.report_cancels {
        return 1;
    }
    let text = line::format(
        Event::Request,
        &cfg.log_fmt,
        &Input {
            req: ctx.msg,
            to: None,
            out_uri: ctx.new_uri.as_deref(),
            phrase: comment,
        },
    );
    emit(cfg, &text);
    1
}

/// `acc_db_request("comment", "table")`: a row for the current request,
/// now. 1, or −1 when the row could not be written (the call goes on).
pub(super) fn db_request(
    cfg: &AccCfg,
    ctx: &MsgCtx<'_>,
    comment: &[u8],
    stmt: &crate::db::Stmt,
    table: &str,
) -> i32 {
    if ctx.msg.method() == Method::Cancel && !cfg.report_cancels {
        return 1;
    }
    let inp = Input {
        req: ctx.msg,
        to: None,
        out_uri: ctx.new_uri.as_deref(),
        phrase: comment,
    };
    if db::write(stmt, table, db::ACC_FMT, &inp, cfg.db_localtime) {
        1
    } else {
        -1
    }
}

/// Which reports a transaction's final outcome gives (SER's rules), for
/// each sink: syslog lines (`log_*flag`) and SQL rows (`db_*flag`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) struct Verdict {
    pub missed: bool,
    pub answered: bool,
    pub db_missed: bool,
    pub db_answered: bool,
}

impl Verdict {
    fn any(self) -> bool {
        self.missed || self.answered || self.db_missed || self.db_answered
    }
}

/// (missed, answered) for one sink's pair of flags.
fn decide(
    cfg: &AccCfg,
    flags: u32,
    method: Method,
    code: u16,
    flag: Option<u32>,
    missed_flag: Option<u32>,
) -> (bool, bool) {
    let missed = method == Method::Invite && code >= 300 && flag_on(flags, missed_flag);
    let answered = flag_on(flags, flag)
        && (code < 300 || cfg.failed_transactions)
        && (method != Method::Cancel || cfg.report_cancels)
        && (code >= 200 || (cfg.early_media && code == 183));
    (missed, answered)
}

/// Decide from the saved flags, the method and the final code. A missed
/// flag is cleared once its report is made (after the first failed
/// attempt), so it reports once.
pub(super) fn verdict(cfg: &AccCfg, flags: u32, method: Method, code: u16) -> Verdict {
    let (missed, answered) = decide(cfg, flags, method, code, cfg.log_flag, cfg.log_missed_flag);
    let (db_missed, db_answered) =
        decide(cfg, flags, method, code, cfg.db_flag, cfg.db_missed_flag);
    Verdict {
        missed,
        answered,
        db_missed,
        db_answered,
    }
}

/// `code reason` of a reply's status line, or the code alone.
fn status_phrase(reply: Option<&Msg>, code: u16) -> Vec<u8> {
    let mut p = code.to_string().into_bytes();
    if let Some(r) = reply.filter(|r| r.status() == code) {
        p.push(b' ');
        p.extend_from_slice(r.reason());
    }
    p
}

pub(super) fn on_tm_event(p: &CbParams<'_>) {
    let Some(cfg) = super::cfg() else { return };
    let Some(region) = crate::tm::store::region() else {
        return;
    };
    match p.event {
        CbEvent::Completed => completed(cfg, region, p.cell, p.code),
        CbEvent::OnFailure => branch_failed(cfg, region, p.cell, p.code),
        CbEvent::E2eAckIn => {
            if let Some(ack) = p.msg {
                acked(cfg, p.cell, ack);
            }
        }
        _ => {}
    }
}

/// What a report needs from the cell, copied out under its lock.
struct Snapshot {
    verdict: Verdict,
    relay_uri: Vec<u8>,
    reply: Vec<u8>,
}

/// Read the cell under its lock; clear the missed flag there when a
/// missed call is reported, so it is reported once (SER does the same).
/// `reply_of` picks the reply the report is about.
fn snapshot(
    cfg: &AccCfg,
    region: &shm::Region,
    cell: &Cell,
    code: u16,
    reply_of: impl Fn(&crate::tm::cell::CellState) -> shm::ShmSlice<u8>,
) -> Option<Snapshot> {
    let method = Method::from_bytes(method_of(region.slice(cell.req)));
    let mut st = cell.lock();
    if st.tx.has(txflags::LOCAL) || st.uac_cb != 0 {
        // Our own UAC transactions are not accounted (no upstream request).
        return None;
    }
    let v = verdict(cfg, st.msg_flags, method, code);
    if !v.any() {
        return None;
    }
    for (reported, flag) in [
        (v.missed, cfg.log_missed_flag),
        (v.db_missed, cfg.db_missed_flag),
    ] {
        if let Some(f) = flag.filter(|_| reported) {
            st.msg_flags &= !(1u32 << f);
        }
    }
    Some(Snapshot {
        verdict: v,
        relay_uri: region.slice(st.relay_uri).to_vec(),
        reply: region.slice(reply_of(&st)).to_vec(),
    })
}

/// The method token of a request line.
fn method_of(req: &[u8]) -> &[u8] {
    let end = req.iter().position(|&b| b == b' ').unwrap_or(0);
    req.get(..end).unwrap_or(&[])
}

fn report(
    cfg: &AccCfg,
    region: &shm::Region,
    cell: &Cell,
    code: u16,
    snap: Snapshot,
    only_missed: bool,
) {
    let Ok(req) = Msg::parse(region.slice(cell.req).to_vec()) else {
        return;
    };
    let reply = Msg::parse(snap.reply).ok();
    let out_uri = (!snap.relay_uri.is_empty()).then_some(snap.relay_uri.as_slice());
    let v = snap.verdict;
    let stmts = super::db_stmts();
    if v.missed || v.db_missed {
        let phrase = status_phrase(reply.as_ref(), code);
        let inp = Input {
            req: &req,
            to: reply.as_ref(),
            out_uri,
            phrase: &phrase,
        };
        if v.missed {
            emit(cfg, &line::format(Event::Missed, &cfg.log_fmt, &inp));
        }
        if let Some(s) = stmts.filter(|_| v.db_missed) {
            let t = &cfg.db_table_missed_calls;
            db::write(&s.missed, t, db::MC_FMT, &inp, cfg.db_localtime);
        }
    }
    if (v.answered || v.db_answered) && !only_missed {
        let phrase = code.to_string().into_bytes();
        let inp = Input {
            req: &req,
            to: reply.as_ref(),
            out_uri,
            phrase: &phrase,
        };
        if v.answered {
            emit(cfg, &line::format(Event::Answered, &cfg.log_fmt, &inp));
        }
        if let Some(s) = stmts.filter(|_| v.db_answered) {
            let t = &cfg.db_table_acc;
            db::write(&s.acc, t, db::ACC_FMT, &inp, cfg.db_localtime);
        }
    }
}

/// The final reply went upstream.
fn completed(cfg: &AccCfg, region: &shm::Region, cell: &Cell, code: u16) {
    if let Some(snap) = snapshot(cfg, region, cell, code, |st| st.uas_reply) {
        report(cfg, region, cell, code, snap, false);
    }
}

/// A failure route is about to run: the first failed attempt of a
/// flagged INVITE is a missed call.
fn branch_failed(cfg: &AccCfg, region: &shm::Region, cell: &Cell, code: u16) {
    let pick = |st: &crate::tm::cell::CellState| {
        st.tx
            .branches
            .iter()
            .zip(st.br.iter())
            .find(|(b, d)| b.status == code && !d.reply.is_empty())
            .map(|(_, d)| d.reply)
            .unwrap_or_default()
    };
    if let Some(snap) = snapshot(cfg, region, cell, code, pick) {
        report(cfg, region, cell, code, snap, true);
    }
}

/// An end-to-end ACK for a flagged transaction (`report_ack`).
fn acked(cfg: &AccCfg, cell: &Cell, ack: &[u8]) {
    if !cfg.report_ack {
        return;
    }
    let (flags, status) = {
        let st = cell.lock();
        (st.msg_flags, st.tx.uas_status)
    };
    let syslog = flag_on(flags, cfg.log_flag);
    let sql = flag_on(flags, cfg.db_flag);
    if !syslog && !sql {
        return;
    }
    let Ok(msg) = Msg::parse(ack.to_vec()) else {
        return;
    };
    let phrase = status.to_string().into_bytes();
    let inp = Input {
        req: &msg,
        to: None,
        out_uri: None,
        phrase: &phrase,
    };
    if syslog {
        emit(cfg, &line::format(Event::Acked, &cfg.log_fmt, &inp));
    }
    if let Some(s) = super::db_stmts().filter(|_| sql) {
        db::write(
            &s.acc,
            &cfg.db_table_acc,
            db::ACC_FMT,
            &inp,
            cfg.db_localtime,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> AccCfg {
        AccCfg {
            log_flag: Some(1),
            log_missed_flag: Some(2),
            ..AccCfg::default()
        }
    }

    #[test]
    fn verdicts_follow_ser_rules() {
        let c = cfg();
        let both = (1 << 1) | (1 << 2);
        let v = verdict(&c, both, Method::Invite, 200);
        assert_eq!(
            v,
            Verdict {
                answered: true,
                ..Verdict::default()
            }
        );
        let v = verdict(&c, both, Method::Invite, 486);
        assert_eq!(
            v,
            Verdict {
                missed: true,
                ..Verdict::default()
            }
        );
        // The SQL sink has flags of its own.
        let d = AccCfg {
            db_flag: Some(3),
            db_missed_flag: Some(4),
            ..cfg()
        };
        let v = verdict(&d, (1 << 3) | (1 << 4), Method::Invite, 486);
        assert_eq!(
            v,
            Verdict {
                db_missed: true,
                ..Verdict::default()
            }
        );
        assert!(verdict(&d, 1 << 3, Method::Invite, 200).db_answered);
        assert!(!verdict(&d, 1 << 3, Method::Invite, 200).answered);
        // Failed transactions are "answered" only when asked for.
        let f = AccCfg {
            failed_transactions: true,
            ..cfg()
        };
        assert!(verdict(&f, both, Method::Invite, 486).answered);
        // Missed calls are INVITEs only.
        assert!(!verdict(&c, both, Method::Message, 486).missed);
        // No flag, no line.
        assert_eq!(verdict(&c, 0, Method::Invite, 200), Verdict::default());
        assert!(!verdict(&c, 1 << 2, Method::Invite, 200).answered);
        // CANCELs only with report_cancels.
        assert!(!verdict(&c, both, Method::Cancel, 200).answered);
        let rc = AccCfg {
            report_cancels: true,
            ..cfg()
        };
        assert!(verdict(&rc, both, Method::Cancel, 200).answered);
        // Provisional: only 183 with early_media.
        assert!(!verdict(&c, both, Method::Invite, 183).answered);
        let em = AccCfg {
            early_media: true,
            ..cfg()
        };
        assert!(verdict(&em, both, Method::Invite, 183).answered);
        assert!(!verdict(&em, both, Method::Invite, 180).answered);
    }

    #[test]
    fn phrases() {
        let r = Msg::parse(
            b"SIP/2.0 486 Busy Here\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKx\r\nFrom: <sip:a@b>;tag=1\r\n\
To: <sip:c@d>;tag=2\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\n\r\n"
                .to_vec(),
        )
        .unwrap();
        assert_eq!(status_phrase(Some(&r), 486), b"486 Busy Here");
        assert_eq!(status_phrase(Some(&r), 408), b"408");
        assert_eq!(status_phrase(None, 408), b"408");
        assert_eq!(method_of(b"INVITE sip:x SIP/2.0\r\n"), b"INVITE");
        assert_eq!(method_of(b""), b"");
    }
}
