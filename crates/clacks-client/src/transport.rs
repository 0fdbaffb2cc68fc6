//! Opening the byte stream: TLS over TCP (with the chosen certificate check) or a Unix socket.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpStream, UnixStream};

use crate::{ClientError, Target, TlsVerify};

/// A connected stream of either kind.
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// Opens the byte stream to `target` (TCP + TLS handshake with the target's certificate check,
/// or a Unix socket), without speaking the protocol. Used by servers for their interclacks links.
pub async fn open(target: &Target) -> Result<Box<dyn Stream>, ClientError> {
    let io = ClientError::from;
    match target {
        Target::Unix(path) => Ok(Box::new(UnixStream::connect(path).await.map_err(io)?)),
        Target::Tls { host, port, verify } => {
            let tcp = TcpStream::connect((host.as_str(), *port))
                .await
                .map_err(io)?;
            let _ = tcp.set_nodelay(true);
            let connector = tokio_rustls::TlsConnector::from(Arc::new(tls_config(verify)?));
            let name = ServerName::try_from(host.clone())
                .map_err(|e| ClientError::Tls(format!("{host}: {e}")))?;
            let tls = connector
                .connect(name, tcp)
                .await
                .map_err(|e| ClientError::Tls(e.to_string()))?;
            Ok(Box::new(tls))
        }
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read_certs(path: &std::path::Path) -> Result<Vec<CertificateDer<'static>>, ClientError> {
    let err = |e: &dyn std::fmt::Display| ClientError::Tls(format!("{}: {e}", path.display()));
    let certs: Vec<_> = CertificateDer::pem_file_iter(path)
        .map_err(|e| err(&e))?
        .collect::<Result<_, _>>()
        .map_err(|e| err(&e))?;
    if certs.is_empty() {
        return Err(err(&"no certificate in file"));
    }
    Ok(certs)
}

fn tls_config(verify: &TlsVerify) -> Result<rustls::ClientConfig, ClientError> {
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| ClientError::Tls(e.to_string()))?;
    let config = match verify {
        TlsVerify::CaFile(path) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in read_certs(path)? {
                roots
                    .add(cert)
                    .map_err(|e| ClientError::Tls(e.to_string()))?;
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        TlsVerify::None => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Accept {
                pinned: None,
                provider: provider(),
            }))
            .with_no_client_auth(),
        TlsVerify::Pinned(path) => {
            let pinned = read_certs(path)?.swap_remove(0);
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(Accept {
                    pinned: Some(pinned),
                    provider: provider(),
                }))
                .with_no_client_auth()
        }
    };
    Ok(config)
}

/// Accepts any certificate, or exactly the pinned one; handshake signatures are still checked.
#[derive(Debug)]
struct Accept {
    pinned: Option<CertificateDer<'static>>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Accept {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match &self.pinned {
            Some(pinned) if pinned.as_ref() != end_entity.as_ref() => Err(rustls::Error::General(
                "server certificate does not match the pinned certificate".into(),
            )),
            _ => Ok(ServerCertVerified::assertion()),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
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
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
