//! `broker.tls`'s files as lapin takes them: extra CA roots beside the system's, and a client
//! certificate for mutual TLS.

use lapin::tcp::{OwnedIdentity, OwnedTLSConfig};

use crate::config::TlsFiles;

/// The TLS settings of one connection. lapin adds `ca_pem`'s certificates to the system roots
/// (its platform verifier), and presents the client certificate when there is one.
pub(super) fn lapin_config(files: TlsFiles) -> OwnedTLSConfig {
    OwnedTLSConfig {
        cert_chain: files.ca_pem,
        identity: files.client.map(|client| OwnedIdentity::PKCS8 {
            pem: client.cert_pem,
            key: client.key_pem,
        }),
    }
}
