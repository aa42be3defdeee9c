//! Building the rustls configs from PEM files, and the errors that name
//! the file to fix.
use std::path::Path;

use super::test_pki::TestPki;
use super::{PemRole, TlsError, TlsValue};

fn set_path(s: &mut super::TlsSettings, name: &str, p: &Path) {
    s.set(name, TlsValue::Str(p.to_str().unwrap())).unwrap();
}

#[test]
fn configs_build_from_the_test_pki() {
    let pki = TestPki::new("cfg-ok");
    let s = pki.settings(&pki.server);
    s.server_config().unwrap();
    s.client_config().unwrap();
    // Who issued our own certificate is not checked against tls_ca_list:
    // that list is for peers.
    pki.settings(&pki.rogue_client).client_config().unwrap();
    let mut v = s.clone();
    v.set("tls_verify", TlsValue::Int(1)).unwrap();
    v.set("tls_require_certificate", TlsValue::Int(1)).unwrap();
    v.context().unwrap();
}

#[test]
fn a_missing_file_is_named_with_its_setting() {
    let pki = TestPki::new("cfg-missing");
    let missing = pki.file("nope.pem");
    for (name, role) in [
        ("tls_certificate", PemRole::Certificate),
        ("tls_private_key", PemRole::PrivateKey),
        ("tls_ca_list", PemRole::CaList),
    ] {
        let mut s = pki.settings(&pki.server);
        s.set("tls_verify", TlsValue::Int(1)).unwrap();
        set_path(&mut s, name, &missing);
        let e = s.server_config().unwrap_err();
        match &e {
            TlsError::Read { role: r, path, .. } => {
                assert_eq!(*r, role);
                assert_eq!(path, &missing);
            }
            other => panic!("{name}: {other:?}"),
        }
        let msg = e.to_string();
        assert!(msg.starts_with(name), "{msg}");
        assert!(msg.contains("nope.pem"), "{msg}");
    }
}

#[test]
fn files_without_what_they_should_hold_are_refused() {
    let pki = TestPki::new("cfg-empty");
    // A key where the certificate belongs.
    let mut s = pki.settings(&pki.server);
    set_path(&mut s, "tls_certificate", &pki.server.key);
    let e = s.server_config().unwrap_err();
    assert!(
        matches!(&e, TlsError::NoCertificate { role: PemRole::Certificate, path } if path == &pki.server.key),
        "{e:?}"
    );
    assert!(e.to_string().contains("no certificate"), "{e}");

    // A certificate where the key belongs.
    let mut s = pki.settings(&pki.server);
    set_path(&mut s, "tls_private_key", &pki.server.cert);
    let e = s.server_config().unwrap_err();
    assert!(matches!(&e, TlsError::NoPrivateKey { .. }), "{e:?}");
    assert!(e.to_string().contains("server.pem"), "{e}");

    // An empty CA list.
    let empty = pki.file("empty.pem");
    std::fs::write(&empty, "").unwrap();
    let mut s = pki.settings(&pki.server);
    s.set("tls_verify", TlsValue::Int(1)).unwrap();
    set_path(&mut s, "tls_ca_list", &empty);
    let e = s.server_config().unwrap_err();
    assert!(
        matches!(
            &e,
            TlsError::NoCertificate {
                role: PemRole::CaList,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(e.to_string().starts_with("tls_ca_list"), "{e}");
}

#[test]
fn broken_pem_is_refused() {
    let pki = TestPki::new("cfg-badpem");
    let bad = pki.file("bad.pem");
    std::fs::write(
        &bad,
        "-----BEGIN CERTIFICATE-----\n!!!! not base64 !!!!\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let mut s = pki.settings(&pki.server);
    set_path(&mut s, "tls_certificate", &bad);
    let e = s.server_config().unwrap_err();
    assert!(
        matches!(
            &e,
            TlsError::BadPem {
                role: PemRole::Certificate,
                ..
            }
        ),
        "{e:?}"
    );
    // A section that never ends.
    std::fs::write(&bad, "-----BEGIN CERTIFICATE-----\nAAAA\n").unwrap();
    let e = s.server_config().unwrap_err();
    assert!(matches!(&e, TlsError::BadPem { .. }), "{e:?}");
    // Valid PEM, but the DER inside is not a certificate.
    std::fs::write(
        &bad,
        "-----BEGIN CERTIFICATE-----\nAAECAwQ=\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let e = s.server_config().unwrap_err();
    assert!(matches!(&e, TlsError::BadCertificate { .. }), "{e:?}");
    // And as a CA.
    let mut s = pki.settings(&pki.server);
    s.set("tls_verify", TlsValue::Int(1)).unwrap();
    set_path(&mut s, "tls_ca_list", &bad);
    let e = s.server_config().unwrap_err();
    assert!(matches!(&e, TlsError::BadCa { index: 1, .. }), "{e:?}");
}

#[test]
fn a_key_that_does_not_match_the_certificate_is_refused() {
    let pki = TestPki::new("cfg-mismatch");
    let mut s = pki.settings(&pki.server);
    set_path(&mut s, "tls_private_key", &pki.client.key);
    for e in [
        s.server_config().unwrap_err(),
        s.client_config().unwrap_err(),
    ] {
        assert!(matches!(&e, TlsError::KeyMismatch { .. }), "{e:?}");
        let msg = e.to_string();
        assert!(
            msg.contains("client.key") && msg.contains("server.pem"),
            "{msg}"
        );
    }
}

#[test]
fn verification_without_a_ca_list_is_refused() {
    let pki = TestPki::new("cfg-noca");
    let mut s = pki.settings(&pki.server);
    s.ca_list = None;
    s.set("tls_verify", TlsValue::Int(1)).unwrap();
    let e = s.server_config().unwrap_err();
    assert!(
        matches!(
            e,
            TlsError::NoCaList {
                setting: "tls_verify"
            }
        ),
        "{e:?}"
    );
    // Client side: no CA list means no verification by default…
    s.client_config().unwrap();
    // …and asking for it anyway is refused.
    s.set("tls_verify_server", TlsValue::Int(1)).unwrap();
    let e = s.client_config().unwrap_err();
    assert!(
        matches!(
            e,
            TlsError::NoCaList {
                setting: "tls_verify_server"
            }
        ),
        "{e:?}"
    );
}

/// The SEC1 `ECPrivateKey` inside a PKCS#8 `PrivateKeyInfo`: its
/// `privateKey` OCTET STRING (RFC 5208 §5).
fn sec1_of_pkcs8(der: &[u8]) -> Vec<u8> {
    fn tlv(b: &[u8]) -> (u8, &[u8], &[u8]) {
        let (len, hdr) = match b[1] {
            n if n < 0x80 => (n as usize, 2),
            0x81 => (b[2] as usize, 3),
            0x82 => ((b[2] as usize) << 8 | b[3] as usize, 4),
            n => panic!("length form {n:#x}"),
        };
        (b[0], &b[hdr..hdr + len], &b[hdr + len..])
    }
    let (_, body, _) = tlv(der);
    let (_, _, rest) = tlv(body); // version
    let (_, _, rest) = tlv(rest); // algorithm
    let (tag, key, _) = tlv(rest);
    assert_eq!(tag, 0x04);
    key.to_vec()
}

#[test]
fn sec1_keys_and_a_combined_cert_and_key_file_load() {
    let pki = TestPki::new("cfg-keyforms");
    let pkcs8 = std::fs::read_to_string(&pki.server.key).unwrap();
    let der = pem::parse(&pkcs8).unwrap().into_contents();
    let sec1 = pki.file("server.sec1.key");
    std::fs::write(
        &sec1,
        pem::encode(&pem::Pem::new("EC PRIVATE KEY", sec1_of_pkcs8(&der))),
    )
    .unwrap();
    let mut s = pki.settings(&pki.server);
    set_path(&mut s, "tls_private_key", &sec1);
    s.server_config().unwrap();

    // SER's default: key and certificate in one cert.pem.
    let both = pki.file("cert.pem");
    let text = std::fs::read_to_string(&pki.server.cert).unwrap() + &pkcs8;
    std::fs::write(&both, text).unwrap();
    let mut s = pki.settings(&pki.server);
    set_path(&mut s, "tls_certificate", &both);
    set_path(&mut s, "tls_private_key", &both);
    s.server_config().unwrap();
}
