//! `tls_*` settings as the config loader passes them.
use std::path::PathBuf;
use std::time::Duration;

use super::{TlsMethod, TlsSettingError, TlsSettings, TlsValue, TLS_SETTING_NAMES};

#[test]
fn defaults_are_ser_0_9s() {
    let s = TlsSettings::default();
    assert_eq!(s.certificate, PathBuf::from("/usr/local/etc/ser/cert.pem"));
    assert_eq!(s.private_key, s.certificate);
    assert_eq!(s.ca_list, None);
    assert!(!s.verify_client && !s.require_certificate);
    assert_eq!(s.method, TlsMethod::Sslv23);
    assert_eq!(s.handshake_timeout, Duration::from_secs(120));
    assert_eq!(s.send_timeout, Duration::from_secs(120));
    // No CA list: nothing to verify a server against.
    assert!(!s.verifies_server());
}

#[test]
fn method_words_are_case_insensitive_and_map_to_tls_1_2_and_1_3() {
    for (word, method) in [
        ("sslv23", TlsMethod::Sslv23),
        ("SSLv23", TlsMethod::Sslv23),
        ("tlsv1", TlsMethod::Tlsv1),
        ("TLSv1", TlsMethod::Tlsv1),
    ] {
        let mut s = TlsSettings::default();
        s.set("tls_method", TlsValue::Str(word)).unwrap();
        assert_eq!(s.method, method, "{word}");
        let versions: Vec<_> = s.method.versions().iter().map(|v| v.version).collect();
        assert!(versions.contains(&rustls::ProtocolVersion::TLSv1_2));
        assert!(versions.contains(&rustls::ProtocolVersion::TLSv1_3));
    }
}

#[test]
fn sslv2_and_sslv3_are_refused_with_the_reason() {
    for word in ["sslv2", "SSLv3"] {
        let mut s = TlsSettings::default();
        let e = s.set("tls_method", TlsValue::Str(word)).unwrap_err();
        assert!(
            matches!(e, TlsSettingError::UnsupportedMethod { .. }),
            "{e:?}"
        );
        let msg = e.to_string();
        assert!(msg.contains("rustls does not speak"), "{msg}");
        assert!(msg.contains("broken"), "{msg}");
        assert_eq!(s.method, TlsMethod::Sslv23, "unchanged on error");
    }
    let e = TlsSettings::default()
        .set("tls_method", TlsValue::Str("tlsv9"))
        .unwrap_err();
    assert_eq!(
        e,
        TlsSettingError::BadMethod {
            value: "tlsv9".into()
        }
    );
    assert!(matches!(
        TlsSettings::default().set("tls_method", TlsValue::Int(1)),
        Err(TlsSettingError::WrongType { .. })
    ));
}

#[test]
fn every_name_is_accepted_and_aliases_share_a_field() {
    let mut s = TlsSettings::default();
    s.set("tls_certificate", TlsValue::Str("/c.pem")).unwrap();
    s.set("tls_private_key", TlsValue::Str("/k.pem")).unwrap();
    s.set("tls_ca_list", TlsValue::Str("/ca.pem")).unwrap();
    s.set("tls_verify", TlsValue::Int(1)).unwrap();
    s.set("tls_require_certificate", TlsValue::Int(1)).unwrap();
    s.set("tls_handshake_timeout", TlsValue::Int(5)).unwrap();
    s.set("tls_send_timeout", TlsValue::Int(7)).unwrap();
    assert_eq!(s.certificate, PathBuf::from("/c.pem"));
    assert_eq!(s.private_key, PathBuf::from("/k.pem"));
    assert_eq!(s.ca_list, Some(PathBuf::from("/ca.pem")));
    assert!(s.verify_client && s.require_certificate);
    assert_eq!(s.handshake_timeout, Duration::from_secs(5));
    assert_eq!(s.send_timeout, Duration::from_secs(7));
    // The CA list turns server verification on unless told otherwise.
    assert!(s.verifies_server());
    s.set("tls_verify_server", TlsValue::Int(0)).unwrap();
    assert!(!s.verifies_server());
    // 2.x's name for the same switch.
    s.set("tls_verify_client", TlsValue::Int(0)).unwrap();
    assert!(!s.verify_client);
    for name in TLS_SETTING_NAMES {
        let r = s.set(name, TlsValue::Int(1));
        assert!(
            !matches!(r, Err(TlsSettingError::Unknown { .. })),
            "{name} is listed but unknown"
        );
    }
}

#[test]
fn bad_names_types_and_values_are_errors() {
    let mut s = TlsSettings::default();
    assert_eq!(
        s.set("tls_verfy", TlsValue::Int(1)),
        Err(TlsSettingError::Unknown {
            name: "tls_verfy".into()
        })
    );
    assert!(matches!(
        s.set("tls_verify", TlsValue::Str("yes")),
        Err(TlsSettingError::WrongType { .. })
    ));
    assert!(matches!(
        s.set("tls_certificate", TlsValue::Int(3)),
        Err(TlsSettingError::WrongType { .. })
    ));
    assert!(matches!(
        s.set("tls_ca_list", TlsValue::Str("")),
        Err(TlsSettingError::EmptyPath { .. })
    ));
    for bad in [0, -5] {
        assert_eq!(
            s.set("tls_send_timeout", TlsValue::Int(bad)),
            Err(TlsSettingError::BadTimeout {
                name: "tls_send_timeout".into(),
                value: bad
            })
        );
    }
    assert_eq!(s, TlsSettings::default(), "errors change nothing");
}
