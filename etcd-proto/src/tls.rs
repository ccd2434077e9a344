//! TLS settings, turned into one rustls client configuration for every
//! transport. rustls is itself sans-IO: the trust, the client identity, the
//! server name and the verification opt-out are decided here, once; a
//! transport only runs the handshake on its own sockets.
//!
//! - **Trust**: the system's roots, plus any CA bundle given
//!   ([`TlsOptions::ca_pem`]); [`TlsOptions::system_roots`]`(false)` trusts
//!   the given CA alone. A missing CA never means "don't verify".
//! - **Client identity** (mTLS): a certificate chain and its private key,
//!   PEM (PKCS#8, PKCS#1 RSA or SEC1 EC keys).
//! - **Server name**: the endpoint's host, or an override
//!   ([`TlsOptions::server_name`]) for members reached by IP address whose
//!   certificates name hosts.
//! - **Opt-out**: [`TlsOptions::danger_accept_invalid_certificates`] skips
//!   certificate verification, explicitly and only when asked.
//! - ALPN offers `http/1.1` (room for `h2` later).

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::error::UsageError;

/// How a client speaks TLS to `https://` endpoints. The default trusts the
/// system's roots and verifies every certificate.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct TlsOptions {
    ca_pem: Option<Vec<u8>>,
    no_system_roots: bool,
    identity: Option<(Vec<u8>, Vec<u8>)>,
    server_name: Option<String>,
    accept_invalid: bool,
}

impl std::fmt::Debug for TlsOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the private key.
        f.debug_struct("TlsOptions")
            .field("ca_pem", &self.ca_pem.as_ref().map(|p| p.len()))
            .field("system_roots", &!self.no_system_roots)
            .field("client_identity", &self.identity.is_some())
            .field("server_name", &self.server_name)
            .field("accept_invalid_certificates", &self.accept_invalid)
            .finish()
    }
}

impl TlsOptions {
    /// Also trusts the CA certificates of this PEM bundle.
    pub fn ca_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.ca_pem = Some(pem.into());
        self
    }

    /// Whether to trust the system's roots too (default true).
    pub fn system_roots(mut self, on: bool) -> Self {
        self.no_system_roots = !on;
        self
    }

    /// Presents this client certificate chain and private key (PEM).
    pub fn identity_pem(
        mut self,
        certificate_chain: impl Into<Vec<u8>>,
        key: impl Into<Vec<u8>>,
    ) -> Self {
        self.identity = Some((certificate_chain.into(), key.into()));
        self
    }

    /// Verifies every endpoint's certificate against this name instead of
    /// the endpoint's host (and sends it as SNI when it is a DNS name).
    pub fn server_name(mut self, name: impl Into<String>) -> Self {
        self.server_name = Some(name.into());
        self
    }

    /// **Accepts any server certificate**: no chain, name or date check.
    /// For tests against self-signed members only: anyone in between can
    /// read and change everything.
    pub fn danger_accept_invalid_certificates(mut self) -> Self {
        self.accept_invalid = true;
        self
    }

    /// The rustls configuration these settings describe. Fails with
    /// [`UsageError::InvalidTls`] on unusable PEM or no trust at all.
    pub fn client_config(&self) -> Result<Arc<ClientConfig>, UsageError> {
        self.build(false)
    }

    /// As [`client_config`](Self::client_config); with `allow_no_roots`, no
    /// trusted CA at all gives a configuration under which every handshake
    /// fails as an unknown issuer (for a client that asked for no TLS).
    pub(crate) fn build(&self, allow_no_roots: bool) -> Result<Arc<ClientConfig>, UsageError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| invalid(format!("protocol versions: {e}")))?;
        let builder = if self.accept_invalid {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider)))
        } else {
            builder.with_root_certificates(self.roots(allow_no_roots)?)
        };
        let mut config = match &self.identity {
            None => builder.with_no_client_auth(),
            Some((chain, key)) => {
                let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(chain)
                    .collect::<Result<_, _>>()
                    .map_err(|e| invalid(format!("client certificate PEM: {e}")))?;
                if chain.is_empty() {
                    return Err(invalid(
                        "the client certificate PEM holds no certificate".into(),
                    ));
                }
                let key = PrivateKeyDer::from_pem_slice(key)
                    .map_err(|e| invalid(format!("client key PEM (PKCS#8, RSA or EC): {e}")))?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| invalid(format!("client identity: {e}")))?
            }
        };
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }

    /// The name to verify `host`'s certificate against.
    pub fn server_name_for(&self, host: &str) -> Result<ServerName<'static>, UsageError> {
        let name = self.server_name.as_deref().unwrap_or(host);
        let name = name.trim_start_matches('[').trim_end_matches(']');
        ServerName::try_from(name.to_owned())
            .map_err(|_| invalid(format!("{name:?} is not a valid TLS server name")))
    }

    fn roots(&self, allow_none: bool) -> Result<RootCertStore, UsageError> {
        let mut roots = RootCertStore::empty();
        if !self.no_system_roots {
            // Unreadable system certificates are skipped, not fatal.
            for cert in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(cert);
            }
        }
        if let Some(pem) = &self.ca_pem {
            let mut added = 0;
            for cert in CertificateDer::pem_slice_iter(pem) {
                let cert = cert.map_err(|e| invalid(format!("CA PEM: {e}")))?;
                roots
                    .add(cert)
                    .map_err(|e| invalid(format!("CA certificate: {e}")))?;
                added += 1;
            }
            if added == 0 {
                return Err(invalid("the CA PEM holds no certificate".into()));
            }
        }
        if roots.is_empty() && !allow_none {
            return Err(invalid(
                "no trusted CA: give ca_pem, or keep the system roots".into(),
            ));
        }
        Ok(roots)
    }
}

fn invalid(reason: String) -> UsageError {
    UsageError::InvalidTls { reason }
}

/// What a failed handshake means, in words a reader acts on, from the
/// error a transport got (a rustls error anywhere in its chain).
pub fn describe_handshake_error(error: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut cause = Some(error);
    while let Some(e) = cause {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return Some(describe(tls));
        }
        // An io::Error's `source` skips the error it wraps: look inside.
        let inner = e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref());
        if let Some(found) = inner.and_then(|inner| describe_handshake_error(inner)) {
            return Some(found);
        }
        cause = e.source();
    }
    None
}

fn describe(error: &rustls::Error) -> String {
    use rustls::{AlertDescription as A, CertificateError as C, Error as E};
    let what = match error {
        E::InvalidCertificate(C::UnknownIssuer) => "the server's certificate has an unknown issuer (give its CA with ca_pem)",
        E::InvalidCertificate(C::NotValidForName) | E::InvalidCertificate(C::NotValidForNameContext { .. }) => {
            "the server's certificate does not name this host (server_name overrides the name checked)"
        }
        E::InvalidCertificate(C::Expired) | E::InvalidCertificate(C::ExpiredContext { .. }) => {
            "the server's certificate has expired"
        }
        E::InvalidCertificate(C::NotValidYet) | E::InvalidCertificate(C::NotValidYetContext { .. }) => {
            "the server's certificate is not valid yet"
        }
        E::AlertReceived(A::CertificateRequired) => {
            "the server requires a client certificate (give one with identity_pem)"
        }
        E::AlertReceived(A::BadCertificate | A::UnknownCA | A::CertificateUnknown) => {
            "the server requires a client certificate, or refused the one given (identity_pem)"
        }
        _ => "",
    };
    if what.is_empty() {
        format!("TLS handshake failed: {error}")
    } else {
        format!("TLS handshake failed: {what} ({error})")
    }
}

/// The verifier of [`TlsOptions::danger_accept_invalid_certificates`]:
/// every certificate passes; signatures are still checked, so the
/// handshake itself stays sound.
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
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
            &self.0.signature_verification_algorithms,
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
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
