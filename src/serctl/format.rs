//! Turning reply bodies into what the operator reads.
use std::fmt::Write as _;

use super::proto::Reply;

/// `ps` replies carry `<idx>\t<pid>\t<desc>` lines; aligned columns under a
/// header read better. Lines of another shape are kept as they came, so a
/// server that words `ps` differently still shows everything.
pub fn ps_table(body: &[String]) -> String {
    let rows: Vec<Option<(&str, &str, &str)>> = body
        .iter()
        .map(|l| {
            let mut f = l.splitn(3, '\t');
            match (f.next(), f.next(), f.next()) {
                (Some(i), Some(p), Some(d)) => Some((i.trim(), p.trim(), d.trim())),
                _ => None,
            }
        })
        .collect();
    let w_idx = rows
        .iter()
        .flatten()
        .map(|r| r.0.len())
        .max()
        .unwrap_or(0)
        .max(3);
    let w_pid = rows
        .iter()
        .flatten()
        .map(|r| r.1.len())
        .max()
        .unwrap_or(0)
        .max(3);
    let mut out = String::new();
    let _ = writeln!(out, "{:>w_idx$}  {:>w_pid$}  PROCESS", "IDX", "PID");
    for (row, raw) in rows.iter().zip(body) {
        match row {
            Some((i, p, d)) => {
                let _ = writeln!(out, "{i:>w_idx$}  {p:>w_pid$}  {d}");
            }
            None => {
                let _ = writeln!(out, "{raw}");
            }
        }
    }
    out
}

/// The body, one line each; a reply without body (`ul_rm`: `200 user
/// (location, a@b) deleted`) says what happened in its status text instead.
pub fn body_or_status(reply: &Reply) -> String {
    let mut out = String::new();
    if reply.body.is_empty() {
        let _ = writeln!(out, "{}", reply.text);
    }
    for l in &reply.body {
        let _ = writeln!(out, "{l}");
    }
    out
}

/// Status line then body, as received: for `serctl fifo`, whose output
/// scripts may parse.
pub fn verbatim(reply: &Reply) -> String {
    let mut out = reply.status_line();
    out.push('\n');
    for l in &reply.body {
        out.push_str(l);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn ps_columns_align_and_odd_lines_survive() {
        let t = ps_table(&lines(&[
            "0\t4711\tattendant",
            "12\t5\treceiver child=0 sock= 127.0.0.1:5060",
            "strange line",
        ]));
        assert_eq!(
            t,
            "IDX   PID  PROCESS\n  0  4711  attendant\n 12     5  receiver child=0 sock= 127.0.0.1:5060\nstrange line\n"
        );
    }

    #[test]
    fn empty_body_shows_status_text() {
        let r = Reply {
            code: 200,
            text: "user deleted".into(),
            body: vec![],
        };
        assert_eq!(body_or_status(&r), "user deleted\n");
        let r = Reply {
            code: 200,
            text: "ok".into(),
            body: lines(&["a", ""]),
        };
        assert_eq!(body_or_status(&r), "a\n\n");
    }

    #[test]
    fn verbatim_is_status_then_body() {
        let r = Reply {
            code: 404,
            text: "not found".into(),
            body: lines(&["x"]),
        };
        assert_eq!(verbatim(&r), "404 not found\nx\n");
    }
}
