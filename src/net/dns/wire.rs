//! DNS messages (RFC 1035 §4): the one-question query we send and the
//! answer records we read back. Every byte of an answer is treated as
//! hostile: reads are bounds-checked and compressed names are skipped,
//! never followed, so no input can loop or index out of range.

use std::net::IpAddr;

/// Record types we ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum QType {
    A = 1,
    Aaaa = 28,
}

const CLASS_IN: u16 = 1;
const HEADER: usize = 12;

/// What an answer said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Answer {
    /// Addresses of the asked type (possibly none: the name exists but
    /// has no record of that type).
    Addrs(Vec<IpAddr>),
    /// NXDOMAIN: the name does not exist; no other server will say more.
    NoSuchName,
    /// SERVFAIL, REFUSED, …: ask the next server.
    ServerFailure,
}

/// Why a datagram is not the answer to our query.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(super) enum WireError {
    #[error("not a valid host name")]
    BadName,
    #[error("answer too short or malformed")]
    Malformed,
    #[error("answer to another query")]
    NotOurs,
}

/// A query for `name` (no trailing dot needed) with id `id`, recursion
/// desired.
pub(super) fn query(id: u16, name: &str, qtype: QType) -> Result<Vec<u8>, WireError> {
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.is_empty() || name.len() > 253 {
        return Err(WireError::BadName);
    }
    let mut q = Vec::with_capacity(HEADER + name.len() + 6);
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&0x0100u16.to_be_bytes()); // RD
    q.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]); // one question
    for label in name.split('.') {
        let ok = !label.is_empty()
            && label.len() <= 63
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !ok {
            return Err(WireError::BadName);
        }
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.push(0);
    q.extend_from_slice(&(qtype as u16).to_be_bytes());
    q.extend_from_slice(&CLASS_IN.to_be_bytes());
    Ok(q)
}

fn u16_at(b: &[u8], at: usize) -> Result<u16, WireError> {
    match b.get(at..at + 2) {
        Some(&[hi, lo]) => Ok(u16::from_be_bytes([hi, lo])),
        _ => Err(WireError::Malformed),
    }
}

/// The offset just past the (possibly compressed) name at `at`.
fn skip_name(b: &[u8], mut at: usize) -> Result<usize, WireError> {
    // A name has at most 127 labels; a longer run is garbage.
    for _ in 0..128 {
        let len = *b.get(at).ok_or(WireError::Malformed)?;
        match len {
            0 => return Ok(at + 1),
            l if l & 0xc0 == 0xc0 => {
                b.get(at + 1).ok_or(WireError::Malformed)?;
                return Ok(at + 2);
            }
            l if l & 0xc0 == 0 => at += 1 + usize::from(l),
            _ => return Err(WireError::Malformed),
        }
    }
    Err(WireError::Malformed)
}

/// Read the answer to `query` (as sent) out of `resp`.
pub(super) fn parse_answer(query: &[u8], resp: &[u8]) -> Result<Answer, WireError> {
    if resp.len() < HEADER || query.len() < HEADER || resp[..2] != query[..2] {
        return Err(WireError::NotOurs);
    }
    let flags = u16_at(resp, 2)?;
    let is_response = flags & 0x8000 != 0;
    let opcode = (flags >> 11) & 0xf;
    if !is_response || opcode != 0 || u16_at(resp, 4)? != 1 {
        return Err(WireError::NotOurs);
    }
    // The question must come back as asked (names compare case-blind).
    let question = &query[HEADER..];
    let echoed = resp
        .get(HEADER..HEADER + question.len())
        .ok_or(WireError::NotOurs)?;
    if !echoed.eq_ignore_ascii_case(question) {
        return Err(WireError::NotOurs);
    }
    match flags & 0xf {
        0 => {}
        3 => return Ok(Answer::NoSuchName),
        _ => return Ok(Answer::ServerFailure),
    }
    let qtype = u16_at(question, question.len() - 4)?;
    let ancount = u16_at(resp, 6)?;
    let mut at = HEADER + question.len();
    let mut addrs = Vec::new();
    // Records of other types (the CNAME chain a recursive server sends
    // first) are skipped; the addresses belong to the chain's end.
    for _ in 0..ancount {
        at = skip_name(resp, at)?;
        let rtype = u16_at(resp, at)?;
        let class = u16_at(resp, at + 2)?;
        let rdlen = usize::from(u16_at(resp, at + 8)?);
        let rdata = resp
            .get(at + 10..at + 10 + rdlen)
            .ok_or(WireError::Malformed)?;
        at += 10 + rdlen;
        if rtype != qtype || class != CLASS_IN {
            continue;
        }
        if let Ok(v4) = <[u8; 4]>::try_from(rdata) {
            addrs.push(IpAddr::from(v4));
        } else if let Ok(v6) = <[u8; 16]>::try_from(rdata) {
            addrs.push(IpAddr::from(v6));
        }
    }
    Ok(Answer::Addrs(addrs))
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A response to `q` with `rcode` and the given answer records
    /// (owner as a pointer to the question name, type, rdata).
    pub(crate) fn response(q: &[u8], rcode: u8, records: &[(u16, &[u8])]) -> Vec<u8> {
        let mut r = q.to_vec();
        r[2] = 0x81;
        r[3] = 0x80 | rcode;
        r[6..8].copy_from_slice(&(records.len() as u16).to_be_bytes());
        for (t, data) in records {
            r.extend_from_slice(&[0xc0, 12]);
            r.extend_from_slice(&t.to_be_bytes());
            r.extend_from_slice(&[0, 1, 0, 0, 0, 60]);
            r.extend_from_slice(&(data.len() as u16).to_be_bytes());
            r.extend_from_slice(data);
        }
        r
    }

    #[test]
    fn query_layout() {
        let q = query(0x1234, "sip.example.com.", QType::A).unwrap();
        assert_eq!(&q[..4], &[0x12, 0x34, 0x01, 0x00]);
        assert_eq!(&q[12..], b"\x03sip\x07example\x03com\x00\x00\x01\x00\x01");
        for bad in ["", "a..b", "a b.c", ".x", &"x".repeat(64)] {
            assert_eq!(query(1, bad, QType::A), Err(WireError::BadName), "{bad:?}");
        }
    }

    #[test]
    fn answers_with_cname_chain() {
        let q = query(7, "a.example", QType::A).unwrap();
        let cname = b"\x01b\xc0\x0e";
        let r = response(
            &q,
            0,
            &[(5, cname), (1, &[192, 0, 2, 7]), (1, &[192, 0, 2, 8])],
        );
        assert_eq!(
            parse_answer(&q, &r),
            Ok(Answer::Addrs(vec![
                "192.0.2.7".parse().unwrap(),
                "192.0.2.8".parse().unwrap()
            ]))
        );
        let q6 = query(8, "a.example", QType::Aaaa).unwrap();
        let mut v6 = [0u8; 16];
        v6[15] = 1;
        let r6 = response(&q6, 0, &[(28, &v6)]);
        assert_eq!(
            parse_answer(&q6, &r6),
            Ok(Answer::Addrs(vec!["::1".parse().unwrap()]))
        );
        assert_eq!(
            parse_answer(&q, &response(&q, 3, &[])),
            Ok(Answer::NoSuchName)
        );
        assert_eq!(
            parse_answer(&q, &response(&q, 2, &[])),
            Ok(Answer::ServerFailure)
        );
    }

    #[test]
    fn foreign_or_broken_answers_are_refused_without_panic() {
        let q = query(7, "a.example", QType::A).unwrap();
        let good = response(&q, 0, &[(1, &[192, 0, 2, 7])]);
        let mut other_id = good.clone();
        other_id[1] ^= 1;
        assert_eq!(parse_answer(&q, &other_id), Err(WireError::NotOurs));
        let other_q = query(7, "b.example", QType::A).unwrap();
        assert_eq!(parse_answer(&other_q, &good), Err(WireError::NotOurs));
        assert_eq!(
            parse_answer(&q, &q),
            Err(WireError::NotOurs),
            "a query is no answer"
        );
        // Every truncation and every single-byte corruption: an error or
        // an answer, never a panic.
        for n in 0..good.len() {
            let _ = parse_answer(&q, &good[..n]);
        }
        for i in 0..good.len() {
            for v in [0x00, 0x3f, 0x40, 0xc0, 0xff] {
                let mut b = good.clone();
                b[i] = v;
                let _ = parse_answer(&q, &b);
            }
        }
    }
}
