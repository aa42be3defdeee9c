//! Reading the PEM files the settings name: a certificate chain, a private
//! key, a CA list. Each error names the setting and the file.
use std::path::Path;

use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::RootCertStore;

use super::error::{PemRole, TlsError};

/// The whole file, read once so a read error and a PEM error are told
/// apart (the PEM iterator would report both as its own error).
fn read(role: PemRole, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        role,
        path: path.to_owned(),
        source,
    })
}

fn bad_pem(role: PemRole, path: &Path) -> impl Fn(pem::Error) -> TlsError + '_ {
    move |source| TlsError::BadPem {
        role,
        path: path.to_owned(),
        source,
    }
}

/// Every `CERTIFICATE` section of the file, in order. Other sections (a
/// key kept in the same file, as SER's default `cert.pem` does) are
/// skipped.
pub(crate) fn load_certs(
    role: PemRole,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let text = read(role, path)?;
    let certs = CertificateDer::pem_slice_iter(&text)
        .collect::<Result<Vec<_>, _>>()
        .map_err(bad_pem(role, path))?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            role,
            path: path.to_owned(),
        });
    }
    Ok(certs)
}

/// The first private key of the file: PKCS#8, PKCS#1 (RSA) or SEC1 (EC).
pub(crate) fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let role = PemRole::PrivateKey;
    let text = read(role, path)?;
    match PrivateKeyDer::from_pem_slice(&text) {
        Ok(key) => Ok(key),
        Err(pem::Error::NoItemsFound) => Err(TlsError::NoPrivateKey {
            path: path.to_owned(),
        }),
        Err(e) => Err(bad_pem(role, path)(e)),
    }
}

/// The CA list as trust anchors. One unusable certificate refuses the
/// whole file: silently trusting fewer CAs than listed would show up
/// later as handshakes failing for no visible reason.
pub(crate) fn load_ca_list(path: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for (index, cert) in load_certs(PemRole::CaList, path)?.into_iter().enumerate() {
        roots.add(cert).map_err(|source| TlsError::BadCa {
            path: path.to_owned(),
            index: index + 1,
            source,
        })?;
    }
    Ok(roots)
}
