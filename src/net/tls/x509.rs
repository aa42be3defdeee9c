//! Just enough DER to print a certificate's subject and issuer for the
//! log. rustls checks certificates but does not show their names; a full
//! X.509 crate would be a large dependency for two log fields. The input
//! may be an unverified peer's bytes: every read is bounds-checked and a
//! malformed certificate gives `None`, never a panic.

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const INTEGER: u8 = 0x02;
const OID: u8 = 0x06;
/// `[0] EXPLICIT Version` in TBSCertificate.
const VERSION_TAG: u8 = 0xa0;

/// A cursor over DER elements.
struct Der<'a>(&'a [u8]);

impl<'a> Der<'a> {
    /// The next element as (tag, content).
    fn next(&mut self) -> Option<(u8, &'a [u8])> {
        let (&tag, rest) = self.0.split_first()?;
        // Multi-byte tags do not occur in the parts we read.
        if tag & 0x1f == 0x1f {
            return None;
        }
        let (&first, rest) = rest.split_first()?;
        let (len, rest) = if first < 0x80 {
            (usize::from(first), rest)
        } else {
            // Long form; 0x80 alone (indefinite length) is not DER.
            let n = usize::from(first & 0x7f);
            if n == 0 || n > 4 {
                return None;
            }
            let bytes = rest.get(..n)?;
            let len = bytes.iter().fold(0usize, |a, &b| (a << 8) | usize::from(b));
            (len, rest.get(n..)?)
        };
        let content = rest.get(..len)?;
        self.0 = rest.get(len..)?;
        Some((tag, content))
    }

    fn expect(&mut self, tag: u8) -> Option<&'a [u8]> {
        match self.next()? {
            (t, content) if t == tag => Some(content),
            _ => None,
        }
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Subject and issuer of a DER certificate (RFC 5280 §4.1), each in
/// OpenSSL's one-line form `/C=DE/O=iptel/CN=proxy`.
pub(crate) fn subject_and_issuer(cert: &[u8]) -> Option<(String, String)> {
    let mut tbs = Der(Der(Der(cert).expect(SEQUENCE)?).expect(SEQUENCE)?);
    let (mut tag, _) = tbs.next()?;
    if tag == VERSION_TAG {
        tag = tbs.next()?.0;
    }
    if tag != INTEGER {
        return None; // serialNumber
    }
    tbs.expect(SEQUENCE)?; // signature algorithm
    let issuer = tbs.expect(SEQUENCE)?;
    tbs.expect(SEQUENCE)?; // validity
    let subject = tbs.expect(SEQUENCE)?;
    Some((name(subject)?, name(issuer)?))
}

/// A Name: SEQUENCE OF SET OF { type OID, value }.
fn name(body: &[u8]) -> Option<String> {
    let mut out = String::new();
    let mut rdns = Der(body);
    while !rdns.is_empty() {
        let mut atvs = Der(rdns.expect(SET)?);
        while !atvs.is_empty() {
            let mut atv = Der(atvs.expect(SEQUENCE)?);
            let oid = atv.expect(OID)?;
            let (tag, value) = atv.next()?;
            out.push('/');
            push_attr_name(&mut out, oid);
            out.push('=');
            push_value(&mut out, tag, value);
        }
    }
    Some(out)
}

/// OpenSSL's short names for the usual attributes, the dotted OID else.
fn push_attr_name(out: &mut String, oid: &[u8]) {
    const ID_AT: [u8; 2] = [0x55, 0x04]; // 2.5.4
    const EMAIL: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x01];
    const DC: &[u8] = &[0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x19];
    let short = match oid {
        [a, b, n] if [*a, *b] == ID_AT => match n {
            3 => Some("CN"),
            5 => Some("serialNumber"),
            6 => Some("C"),
            7 => Some("L"),
            8 => Some("ST"),
            10 => Some("O"),
            11 => Some("OU"),
            _ => None,
        },
        EMAIL => Some("emailAddress"),
        DC => Some("DC"),
        _ => None,
    };
    match short {
        Some(s) => out.push_str(s),
        None => push_dotted_oid(out, oid),
    }
}

/// X.690 §8.19: base-128 arcs, the first byte holding two of them.
fn push_dotted_oid(out: &mut String, oid: &[u8]) {
    let mut arcs = Vec::new();
    let mut acc: u64 = 0;
    for &b in oid {
        acc = match acc.checked_mul(128) {
            Some(v) => v | u64::from(b & 0x7f),
            None => {
                out.push('?');
                return;
            }
        };
        if b & 0x80 == 0 {
            arcs.push(acc);
            acc = 0;
        }
    }
    let Some((&first, rest)) = arcs.split_first() else {
        out.push('?');
        return;
    };
    let (a, b) = match first {
        0..=39 => (0, first),
        40..=79 => (1, first - 40),
        _ => (2, first - 80),
    };
    out.push_str(&format!("{a}.{b}"));
    for arc in rest {
        out.push_str(&format!(".{arc}"));
    }
}

/// A DirectoryString or similar, decoded by its tag, with control
/// characters escaped so a certificate cannot forge log lines.
fn push_value(out: &mut String, tag: u8, value: &[u8]) {
    let text: String = match tag {
        // UTF8String, NumericString, PrintableString, IA5String,
        // VisibleString: UTF-8 or a subset of it.
        0x0c | 0x12 | 0x13 | 0x16 | 0x1a => String::from_utf8_lossy(value).into_owned(),
        // T61String: taken as Latin-1, as most producers meant it.
        0x14 => value.iter().map(|&b| char::from(b)).collect(),
        // BMPString: UTF-16BE.
        0x1e => char::decode_utf16(
            value
                .chunks_exact(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]])),
        )
        .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
        .collect(),
        // UniversalString: UTF-32BE.
        0x1c => value
            .chunks_exact(4)
            .map(|c| {
                char::from_u32(u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
                    .unwrap_or(char::REPLACEMENT_CHARACTER)
            })
            .collect(),
        // Anything else: hex, as OpenSSL prints unknown types.
        _ => {
            out.push('#');
            for b in value {
                out.push_str(&format!("{b:02X}"));
            }
            return;
        }
    };
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A TBSCertificate-shaped DER built by hand: version, serial, alg,
    /// issuer, validity, subject.
    fn cert(issuer: &[u8], subject: &[u8]) -> Vec<u8> {
        fn tlv(tag: u8, body: &[u8]) -> Vec<u8> {
            let mut v = vec![tag];
            if body.len() < 0x80 {
                v.push(body.len() as u8);
            } else {
                v.extend([0x82, (body.len() >> 8) as u8, body.len() as u8]);
            }
            v.extend_from_slice(body);
            v
        }
        let mut tbs = tlv(VERSION_TAG, &tlv(INTEGER, &[2]));
        tbs.extend(tlv(INTEGER, &[1]));
        tbs.extend(tlv(SEQUENCE, &[]));
        tbs.extend(tlv(SEQUENCE, issuer));
        tbs.extend(tlv(SEQUENCE, &[]));
        tbs.extend(tlv(SEQUENCE, subject));
        tlv(SEQUENCE, &tlv(SEQUENCE, &tbs))
    }

    fn rdn(oid: &[u8], tag: u8, value: &[u8]) -> Vec<u8> {
        let mut atv = vec![OID, oid.len() as u8];
        atv.extend_from_slice(oid);
        atv.extend([tag, value.len() as u8]);
        atv.extend_from_slice(value);
        let mut seq = vec![SEQUENCE, atv.len() as u8];
        seq.extend(atv);
        let mut set = vec![SET, seq.len() as u8];
        set.extend(seq);
        set
    }

    #[test]
    fn names_print_in_openssl_one_line_form() {
        let mut subject = rdn(&[0x55, 0x04, 0x06], 0x13, b"DE");
        subject.extend(rdn(&[0x55, 0x04, 0x03], 0x0c, b"proxy"));
        let issuer = rdn(&[0x55, 0x04, 0x0a], 0x1e, &[0, b'i', 0, b'p']);
        let (s, i) = subject_and_issuer(&cert(&issuer, &subject)).unwrap();
        assert_eq!(s, "/C=DE/CN=proxy");
        assert_eq!(i, "/O=ip");
    }

    #[test]
    fn unknown_attributes_show_their_oid_and_controls_are_escaped() {
        // 2.5.4.65 (pseudonym) with a CR LF inside.
        let subject = rdn(&[0x55, 0x04, 0x41], 0x0c, b"a\r\nb");
        let (s, _) = subject_and_issuer(&cert(&[], &subject)).unwrap();
        assert_eq!(s, "/2.5.4.65=a\\r\\nb");
    }

    #[test]
    fn truncated_or_garbage_input_gives_none() {
        let good = cert(&[], &rdn(&[0x55, 0x04, 0x03], 0x0c, b"x"));
        for cut in 0..good.len() {
            assert_eq!(subject_and_issuer(&good[..cut]), None, "cut at {cut}");
        }
        assert_eq!(subject_and_issuer(&[0x30, 0x80, 0, 0]), None);
        assert_eq!(
            subject_and_issuer(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]),
            None
        );
        assert_eq!(subject_and_issuer(b"not a certificate at all"), None);
    }
}
