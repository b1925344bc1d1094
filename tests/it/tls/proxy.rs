//! A TLS listener in front of the local RabbitMQ: it terminates TLS with a certificate of the
//! test's CA (asking for a client certificate when told to) and forwards the bytes to
//! 127.0.0.1:5672, counting the handshakes that succeeded.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{RootCertStore, ServerConfig, crypto};
use tokio_util::sync::CancellationToken;

use super::pki::Issued;

/// A TLS-terminating proxy to the local RabbitMQ, stopped when dropped.
pub struct TlsProxy {
    pub port: u16,
    handshakes: Arc<AtomicUsize>,
    stop: CancellationToken,
}

impl TlsProxy {
    /// Listens on 127.0.0.1 with the certificate `server`; with `client_ca`, only clients
    /// presenting a certificate that CA signed complete the handshake.
    pub async fn start(server: &Issued, client_ca: Option<&Path>) -> Self {
        let provider = Arc::new(crypto::aws_lc_rs::default_provider());
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap();
        let builder = match client_ca {
            Some(ca) => {
                let mut roots = RootCertStore::empty();
                for cert in CertificateDer::pem_file_iter(ca).unwrap() {
                    roots.add(cert.unwrap()).unwrap();
                }
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                        .build()
                        .unwrap();
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let chain = CertificateDer::pem_file_iter(&server.cert)
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_file(&server.key).unwrap();
        let acceptor = TlsAcceptor::from(Arc::new(builder.with_single_cert(chain, key).unwrap()));

        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let handshakes = Arc::new(AtomicUsize::new(0));
        let stop = CancellationToken::new();
        let (count, stopped) = (Arc::clone(&handshakes), stop.clone());
        tokio::spawn(async move {
            loop {
                let client = tokio::select! {
                    accepted = listener.accept() => match accepted {
                        Ok((client, _)) => client,
                        Err(_) => return,
                    },
                    () = stopped.cancelled() => return,
                };
                let (acceptor, count, stopped) =
                    (acceptor.clone(), Arc::clone(&count), stopped.clone());
                tokio::spawn(async move {
                    // A refused handshake just closes the connection, as a real listener does.
                    let Ok(mut client) = acceptor.accept(client).await else {
                        return;
                    };
                    count.fetch_add(1, Ordering::SeqCst);
                    let Ok(mut broker) = TcpStream::connect("127.0.0.1:5672").await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut broker) => {}
                        () = stopped.cancelled() => {}
                    }
                });
            }
        });
        Self {
            port,
            handshakes,
            stop,
        }
    }

    /// TLS handshakes completed so far.
    pub fn handshakes(&self) -> usize {
        self.handshakes.load(Ordering::SeqCst)
    }

    /// `amqps://guest:guest@<host>:<port>/%2f`.
    pub fn url(&self, host: &str) -> String {
        format!("amqps://guest:guest@{host}:{}/%2f", self.port)
    }
}

impl Drop for TlsProxy {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}
