//! A throw-away PKI for the TLS tests, made with rcgen into a temp dir: a
//! test CA, a server certificate for localhost/127.0.0.1, a client
//! certificate from the CA and one from a CA nobody trusts.
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

use super::{TlsSettings, TlsValue};

/// Certificate and key files of one identity.
pub(crate) struct Identity {
    pub(crate) cert: PathBuf,
    pub(crate) key: PathBuf,
}

pub(crate) struct TestPki {
    pub(crate) dir: PathBuf,
    /// The CA that signed `server` and `client`.
    pub(crate) ca: PathBuf,
    /// A CA that signed only `rogue_client`.
    pub(crate) rogue_ca: PathBuf,
    pub(crate) server: Identity,
    pub(crate) client: Identity,
    pub(crate) rogue_client: Identity,
}

fn ca(name: &str) -> (Certificate, KeyPair) {
    let key = KeyPair::generate().expect("CA key");
    let mut p = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name = rcgen::DistinguishedName::new();
    p.distinguished_name
        .push(DnType::OrganizationName, "ser tests");
    p.distinguished_name.push(DnType::CommonName, name);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    (p.self_signed(&key).expect("CA cert"), key)
}

fn leaf(
    cn: &str,
    sans: &[&str],
    usage: ExtendedKeyUsagePurpose,
    issuer: &(Certificate, KeyPair),
) -> (Certificate, KeyPair) {
    let key = KeyPair::generate().expect("leaf key");
    let sans: Vec<String> = sans.iter().map(|s| s.to_string()).collect();
    let mut p = CertificateParams::new(sans).expect("leaf params");
    p.distinguished_name = rcgen::DistinguishedName::new();
    p.distinguished_name.push(DnType::CountryName, "DE");
    p.distinguished_name.push(DnType::CommonName, cn);
    p.extended_key_usages = vec![usage];
    (
        p.signed_by(&key, &issuer.0, &issuer.1).expect("leaf cert"),
        key,
    )
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).expect("write test PEM");
}

impl TestPki {
    /// A fresh PKI in its own directory (`name` keeps parallel tests apart).
    pub(crate) fn new(name: &str) -> TestPki {
        let dir = std::env::temp_dir().join(format!("ser-tls-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        let ca_pair = ca("ser test CA");
        let rogue_pair = ca("rogue CA");
        let server = leaf(
            "localhost",
            &["localhost", "127.0.0.1"],
            ExtendedKeyUsagePurpose::ServerAuth,
            &ca_pair,
        );
        let client = leaf(
            "client.test",
            &["client.test"],
            ExtendedKeyUsagePurpose::ClientAuth,
            &ca_pair,
        );
        let rogue = leaf(
            "rogue.test",
            &["rogue.test"],
            ExtendedKeyUsagePurpose::ClientAuth,
            &rogue_pair,
        );
        let identity = |name: &str, (cert, key): &(Certificate, KeyPair)| {
            let id = Identity {
                cert: dir.join(format!("{name}.pem")),
                key: dir.join(format!("{name}.key")),
            };
            write(&id.cert, &cert.pem());
            write(&id.key, &key.serialize_pem());
            id
        };
        let pki = TestPki {
            ca: dir.join("ca.pem"),
            rogue_ca: dir.join("rogue_ca.pem"),
            server: identity("server", &server),
            client: identity("client", &client),
            rogue_client: identity("rogue_client", &rogue),
            dir,
        };
        write(&pki.ca, &ca_pair.0.pem());
        write(&pki.rogue_ca, &rogue_pair.0.pem());
        pki
    }

    /// A path in the PKI's directory, for tests that write their own files.
    pub(crate) fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Settings as a config would give them: `id`'s files, our CA.
    pub(crate) fn settings(&self, id: &Identity) -> TlsSettings {
        let mut s = TlsSettings::default();
        let path = |p: &Path| p.to_str().expect("utf-8 temp path").to_owned();
        s.set("tls_certificate", TlsValue::Str(&path(&id.cert)))
            .unwrap();
        s.set("tls_private_key", TlsValue::Str(&path(&id.key)))
            .unwrap();
        s.set("tls_ca_list", TlsValue::Str(&path(&self.ca)))
            .unwrap();
        s
    }
}

impl Drop for TestPki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
