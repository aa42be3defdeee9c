//! DNS messages (RFC 1035 §4): the one-question query we send and the
//! answer records we read back. Every byte of an answer is treated as
//! hostile: reads are bounds-checked and compressed names are skipped,
//! never followed, so no input can loop or index out of range.

use std::net::IpAddr;

/// Record types we ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QType {
    A = 1,
    Ptr = 12,
    Aaaa = 28,
    Srv = 33,
    Naptr = 35,
}

impl QType {
    pub fn from_u16(n: u16) -> Option<QType> {
        Some(match n {
            1 => QType::A,
            12 => QType::Ptr,
            28 => QType::Aaaa,
            33 => QType::Srv,
            35 => QType::Naptr,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            QType::A => "A",
            QType::Ptr => "PTR",
            QType::Aaaa => "AAAA",
            QType::Srv => "SRV",
            QType::Naptr => "NAPTR",
        }
    }
}

/// An SRV record (RFC 2782).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Srv {
    pub priority: u16,
    pub weight: u16,
    pub port: u16,
    pub target: String,
}

/// A NAPTR record (RFC 3403) as RFC 3263 uses it: the regexp field is
/// not (SIP uses the replacement).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Naptr {
    pub order: u16,
    pub preference: u16,
    pub flags: String,
    pub services: String,
    pub replacement: String,
}

/// One record's data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RData {
    Addr(IpAddr),
    /// A PTR record's name.
    Name(String),
    Srv(Srv),
    Naptr(Naptr),
}

/// A record of the asked type and how long it may be kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub ttl: u32,
    pub data: RData,
}

const CLASS_IN: u16 = 1;
const HEADER: usize = 12;

/// What an answer said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Answer {
    /// Records of the asked type (possibly none: the name exists but
    /// has no record of that type).
    Records(Vec<Record>),
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

/// The name at `at`, following compression pointers (only backwards, at
/// most 16 of them), lower-cased and without the trailing dot.
fn read_name(b: &[u8], mut at: usize) -> Result<String, WireError> {
    let mut out = String::new();
    let mut jumps = 0;
    for _ in 0..256 {
        let len = *b.get(at).ok_or(WireError::Malformed)?;
        match len {
            0 => return Ok(out),
            l if l & 0xc0 == 0xc0 => {
                let lo = *b.get(at + 1).ok_or(WireError::Malformed)?;
                let to = usize::from(l & 0x3f) << 8 | usize::from(lo);
                jumps += 1;
                if to >= at || jumps > 16 {
                    return Err(WireError::Malformed);
                }
                at = to;
            }
            l if l & 0xc0 == 0 => {
                let label = b
                    .get(at + 1..at + 1 + usize::from(l))
                    .ok_or(WireError::Malformed)?;
                if !label
                    .iter()
                    .all(|c| c.is_ascii_alphanumeric() || *c == b'-' || *c == b'_')
                {
                    return Err(WireError::Malformed);
                }
                if !out.is_empty() {
                    out.push('.');
                }
                out.extend(label.iter().map(|c| char::from(c.to_ascii_lowercase())));
                if out.len() > 253 {
                    return Err(WireError::Malformed);
                }
                at += 1 + usize::from(l);
            }
            _ => return Err(WireError::Malformed),
        }
    }
    Err(WireError::Malformed)
}

/// A `<character-string>` (RFC 1035 3.3) at `at`: the text and the offset
/// past it.
fn char_string(b: &[u8], at: usize) -> Result<(String, usize), WireError> {
    let len = usize::from(*b.get(at).ok_or(WireError::Malformed)?);
    let s = b.get(at + 1..at + 1 + len).ok_or(WireError::Malformed)?;
    Ok((String::from_utf8_lossy(s).into_owned(), at + 1 + len))
}

/// The data of one record of type `qtype` whose rdata is `resp[at..end]`.
fn rdata(resp: &[u8], qtype: QType, at: usize, end: usize) -> Result<RData, WireError> {
    let data = resp.get(at..end).ok_or(WireError::Malformed)?;
    Ok(match qtype {
        QType::A => RData::Addr(IpAddr::from(
            <[u8; 4]>::try_from(data).map_err(|_| WireError::Malformed)?,
        )),
        QType::Aaaa => RData::Addr(IpAddr::from(
            <[u8; 16]>::try_from(data).map_err(|_| WireError::Malformed)?,
        )),
        QType::Ptr => RData::Name(read_name(resp, at)?),
        QType::Srv => RData::Srv(Srv {
            priority: u16_at(resp, at)?,
            weight: u16_at(resp, at + 2)?,
            port: u16_at(resp, at + 4)?,
            target: read_name(resp, at + 6)?,
        }),
        QType::Naptr => {
            let (flags, p) = char_string(resp, at + 4)?;
            let (services, p) = char_string(resp, p)?;
            let (_regexp, p) = char_string(resp, p)?;
            if p >= end {
                return Err(WireError::Malformed);
            }
            RData::Naptr(Naptr {
                order: u16_at(resp, at)?,
                preference: u16_at(resp, at + 2)?,
                flags: flags.to_ascii_lowercase(),
                services: services.to_ascii_uppercase(),
                replacement: read_name(resp, p)?,
            })
        }
    })
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
    let qnum = u16_at(question, question.len() - 4)?;
    let qtype = QType::from_u16(qnum).ok_or(WireError::NotOurs)?;
    let ancount = u16_at(resp, 6)?;
    let mut at = HEADER + question.len();
    let mut records = Vec::new();
    // Records of other types (the CNAME chain a recursive server sends
    // first) are skipped; the records belong to the chain's end. A record
    // that does not parse is skipped too; the rest still count.
    for _ in 0..ancount {
        at = skip_name(resp, at)?;
        let rtype = u16_at(resp, at)?;
        let class = u16_at(resp, at + 2)?;
        let ttl_hi = u16_at(resp, at + 4)?;
        let ttl_lo = u16_at(resp, at + 6)?;
        let rdlen = usize::from(u16_at(resp, at + 8)?);
        let start = at + 10;
        let end = start + rdlen;
        resp.get(start..end).ok_or(WireError::Malformed)?;
        at = end;
        if rtype != qnum || class != CLASS_IN {
            continue;
        }
        let ttl = u32::from(ttl_hi) << 16 | u32::from(ttl_lo);
        if let Ok(data) = rdata(resp, qtype, start, end) {
            // A TTL with the top bit set is treated as 0 (RFC 2181 8).
            let ttl = if ttl > i32::MAX as u32 { 0 } else { ttl };
            records.push(Record { ttl, data });
        }
    }
    Ok(Answer::Records(records))
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

    fn addr_rec(ip: &str) -> Record {
        Record {
            ttl: 60,
            data: RData::Addr(ip.parse().unwrap()),
        }
    }

    /// SRV rdata: priority, weight, port, target (uncompressed).
    pub(crate) fn srv_rdata(prio: u16, weight: u16, port: u16, target: &str) -> Vec<u8> {
        let mut d = Vec::new();
        d.extend_from_slice(&prio.to_be_bytes());
        d.extend_from_slice(&weight.to_be_bytes());
        d.extend_from_slice(&port.to_be_bytes());
        for l in target.split('.') {
            d.push(l.len() as u8);
            d.extend_from_slice(l.as_bytes());
        }
        d.push(0);
        d
    }

    #[test]
    fn srv_and_naptr_records() {
        let q = query(9, "_sip._udp.example.test", QType::Srv).unwrap();
        let a = srv_rdata(10, 5, 5070, "pbx1.Example.test");
        // The second target compressed: "pbx2" + pointer to "example.test"
        // in the question (offset 12 + 5 + 5 = 22).
        let mut b = 20u16.to_be_bytes().to_vec();
        b.extend_from_slice(&[0, 0, 0x13, 0xc4, 4, b'p', b'b', b'x', b'2', 0xc0, 22]);
        let r = response(&q, 0, &[(33, &a), (33, &b)]);
        let Ok(Answer::Records(recs)) = parse_answer(&q, &r) else {
            panic!("no records");
        };
        let srv: Vec<Srv> = recs
            .into_iter()
            .filter_map(|r| match r.data {
                RData::Srv(s) => Some(s),
                _ => None,
            })
            .collect();
        assert_eq!(srv.len(), 2);
        assert_eq!((srv[0].priority, srv[0].port), (10, 5070));
        assert_eq!(srv[0].target, "pbx1.example.test");
        assert_eq!((srv[1].priority, srv[1].port), (20, 5060));
        assert_eq!(srv[1].target, "pbx2.example.test");
        // A pointer forwards (or to itself) is refused, not followed.
        let mut loopy = 20u16.to_be_bytes().to_vec();
        loopy.extend_from_slice(&[0, 0, 0x13, 0xc4, 0xc0, 0xff]);
        let r = response(&q, 0, &[(33, &loopy)]);
        assert_eq!(parse_answer(&q, &r), Ok(Answer::Records(vec![])));

        let q = query(9, "example.test", QType::Naptr).unwrap();
        let mut n = vec![0, 10, 0, 50, 1, b'S', 7];
        n.extend_from_slice(b"SIP+D2T");
        n.push(0);
        n.extend_from_slice(&srv_rdata(0, 0, 0, "_sip._tcp.example.test")[6..]);
        let r = response(&q, 0, &[(35, &n)]);
        let Ok(Answer::Records(recs)) = parse_answer(&q, &r) else {
            panic!("no records");
        };
        assert_eq!(
            recs[0].data,
            RData::Naptr(Naptr {
                order: 10,
                preference: 50,
                flags: "s".into(),
                services: "SIP+D2T".into(),
                replacement: "_sip._tcp.example.test".into(),
            })
        );
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
            Ok(Answer::Records(vec![
                addr_rec("192.0.2.7"),
                addr_rec("192.0.2.8")
            ]))
        );
        let q6 = query(8, "a.example", QType::Aaaa).unwrap();
        let mut v6 = [0u8; 16];
        v6[15] = 1;
        let r6 = response(&q6, 0, &[(28, &v6)]);
        assert_eq!(
            parse_answer(&q6, &r6),
            Ok(Answer::Records(vec![addr_rec("::1")]))
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
