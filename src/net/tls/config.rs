//! Turning [`TlsSettings`] into rustls configs, at startup before the
//! fork, so a bad file or a contradictory setting refuses the config.
use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::sign::{CertifiedKey, SingleCertAndKey};
use rustls::{ClientConfig, DigitallySignedStruct, InconsistentKeys, ServerConfig};

use super::error::TlsError;
use super::pem::{load_ca_list, load_certs, load_key};
use super::settings::TlsSettings;
use super::PemRole;

/// The crypto provider every config uses. Given explicitly rather than
/// installed process-wide, so nothing depends on which crate set a
/// default first, and aws-lc-rs never enters the build.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

impl TlsSettings {
    /// Our certificate chain and key, checked against each other. Done by
    /// hand before rustls does it again, so each failure gets the error
    /// that names the file to fix.
    fn certified_key(&self, provider: &CryptoProvider) -> Result<Arc<CertifiedKey>, TlsError> {
        let certs = load_certs(PemRole::Certificate, &self.certificate)?;
        let key = load_key(&self.private_key)?;
        let signing_key = provider
            .key_provider
            .load_private_key(key)
            .map_err(|source| TlsError::BadKey {
                path: self.private_key.clone(),
                source,
            })?;
        let certified = CertifiedKey::new(certs, signing_key);
        match certified.keys_match() {
            // Unknown: the key type cannot tell its public key; rustls
            // accepts such pairs too.
            Ok(()) | Err(rustls::Error::InconsistentKeys(InconsistentKeys::Unknown)) => {
                Ok(Arc::new(certified))
            }
            Err(rustls::Error::InconsistentKeys(InconsistentKeys::KeyMismatch)) => {
                Err(TlsError::KeyMismatch {
                    cert: self.certificate.clone(),
                    key: self.private_key.clone(),
                })
            }
            Err(source) => Err(TlsError::BadCertificate {
                cert: self.certificate.clone(),
                key: self.private_key.clone(),
                source,
            }),
        }
    }

    /// The CA list, required when `setting` turns verification on.
    fn ca_roots(&self, setting: &'static str) -> Result<(&Path, rustls::RootCertStore), TlsError> {
        let path = self
            .ca_list
            .as_deref()
            .ok_or(TlsError::NoCaList { setting })?;
        Ok((path, load_ca_list(path)?))
    }

    /// The config for connections we accept on `tls:` listen sockets.
    pub fn server_config(&self) -> Result<Arc<ServerConfig>, TlsError> {
        let provider = provider();
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(self.method.versions())
            .map_err(|source| TlsError::Method {
                method: self.method.as_str(),
                source,
            })?;
        let builder = if self.verify_client {
            let (path, roots) = self.ca_roots("tls_verify")?;
            let mut verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
            if !self.require_certificate {
                // SER's SSL_VERIFY_PEER alone: a client without a
                // certificate is let in, a client with a bad one is not.
                verifier = verifier.allow_unauthenticated();
            }
            let verifier = verifier.build().map_err(|source| TlsError::Verifier {
                path: path.to_owned(),
                source,
            })?;
            builder.with_client_cert_verifier(verifier)
        } else {
            if self.require_certificate {
                log::warn!(
                    "tls_require_certificate is on but tls_verify is off: client certificates \
                     are neither asked for nor required (as in SER)"
                );
            }
            builder.with_no_client_auth()
        };
        let key = self.certified_key(&provider)?;
        Ok(Arc::new(
            builder.with_cert_resolver(Arc::new(SingleCertAndKey::from(key))),
        ))
    }

    /// The config for connections we open. It offers our certificate to
    /// servers that ask, as SER does, and verifies the server as
    /// [`TlsSettings::verifies_server`] says.
    pub fn client_config(&self) -> Result<Arc<ClientConfig>, TlsError> {
        let provider = provider();
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(self.method.versions())
            .map_err(|source| TlsError::Method {
                method: self.method.as_str(),
                source,
            })?;
        let builder = if self.verifies_server() {
            let (path, roots) = self.ca_roots("tls_verify_server")?;
            let verifier =
                WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                    .build()
                    .map_err(|source| TlsError::Verifier {
                        path: path.to_owned(),
                        source,
                    })?;
            builder.with_webpki_verifier(verifier)
        } else {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(UnverifiedServer {
                    provider: provider.clone(),
                }))
        };
        let key = self.certified_key(&provider)?;
        Ok(Arc::new(builder.with_client_cert_resolver(Arc::new(
            SingleCertAndKey::from(key),
        ))))
    }
}

/// With `tls_verify_server` off: any server certificate is taken, as SER
/// 0.9 does without `tls_verify`. The handshake signatures are still
/// checked, so the peer holds the key of the certificate it showed; the
/// session reports the certificate as unverified.
#[derive(Debug)]
struct UnverifiedServer {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for UnverifiedServer {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
