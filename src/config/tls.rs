//! `broker.tls`: the PEM files an `amqps://` connection trusts and presents, checked at load
//! (together, only with `amqps://`, readable, holding what they should) and read again at each
//! connect, so that renewed files are picked up when the worker reconnects.

use std::path::{Path, PathBuf};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::Deserialize;

/// TLS files for an `amqps://` broker. Without any, the system roots verify the broker (they
/// honour `SSL_CERT_FILE` and `SSL_CERT_DIR`) and no client certificate is sent.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BrokerTls {
    /// PEM file of CA certificates trusted on top of the system roots (a private CA); relative
    /// to the config file's folder.
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate (its chain may follow) for a broker that requires mutual TLS;
    /// goes with `client_key_file`. Relative to the config file's folder.
    pub client_cert_file: Option<PathBuf>,
    /// PEM private key of `client_cert_file` (PKCS#8, PKCS#1 or SEC1, not encrypted); relative
    /// to the config file's folder.
    pub client_key_file: Option<PathBuf>,
}

/// What the files of [`BrokerTls`] hold, read and checked.
#[derive(Default)]
pub struct TlsFiles {
    /// The extra CA certificates, as PEM text.
    pub ca_pem: Option<String>,
    /// The client certificate chain and its private key, both PEM.
    pub client: Option<ClientIdentity>,
}

/// A client certificate and its key, as PEM bytes (the key is a secret: never printed).
pub struct ClientIdentity {
    pub cert_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
}

/// A `broker.tls` file that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("broker.tls.{key} {}: {reason}", path.display())]
pub struct TlsFileError {
    key: &'static str,
    path: PathBuf,
    reason: String,
}

impl BrokerTls {
    fn is_set(&self) -> bool {
        self.ca_file.is_some() || self.client_cert_file.is_some() || self.client_key_file.is_some()
    }

    /// The rules on the keys themselves; `url` is `broker.url`.
    pub(super) fn problems(&self, url: &str) -> Vec<String> {
        let mut problems = Vec::new();
        if self.is_set() && !url.starts_with("amqps://") {
            problems.push(
                "broker.tls is only used with an amqps:// broker.url: use amqps://, or remove broker.tls"
                    .to_owned(),
            );
        }
        if self.client_cert_file.is_some() != self.client_key_file.is_some() {
            problems.push(
                "broker.tls.client_cert_file and broker.tls.client_key_file go together: set both for mutual TLS, or neither"
                    .to_owned(),
            );
        }
        problems
    }

    /// Makes relative paths relative to `base`, the config file's folder.
    pub(super) fn resolve(&mut self, base: &Path) {
        let files = [
            &mut self.ca_file,
            &mut self.client_cert_file,
            &mut self.client_key_file,
        ];
        for path in files.into_iter().flatten() {
            if path.is_relative() {
                *path = base.join(&*path);
            }
        }
    }

    /// Reads the files and checks that each holds what it should: at least one certificate,
    /// or a private key.
    pub fn read(&self) -> Result<TlsFiles, TlsFileError> {
        let ca_pem = match &self.ca_file {
            Some(path) => {
                let pem = read("ca_file", path)?;
                certificates("ca_file", path, &pem)?;
                Some(String::from_utf8(pem).map_err(|_| fail("ca_file", path, "is not PEM text"))?)
            }
            None => None,
        };
        let client = match (&self.client_cert_file, &self.client_key_file) {
            (Some(cert), Some(key)) => {
                let cert_pem = read("client_cert_file", cert)?;
                certificates("client_cert_file", cert, &cert_pem)?;
                let key_pem = read("client_key_file", key)?;
                PrivateKeyDer::from_pem_slice(&key_pem).map_err(|_| {
                    fail(
                        "client_key_file",
                        key,
                        "holds no PEM private key (PKCS#8, PKCS#1 or SEC1, not encrypted)",
                    )
                })?;
                Some(ClientIdentity { cert_pem, key_pem })
            }
            _ => None,
        };
        Ok(TlsFiles { ca_pem, client })
    }
}

fn fail(key: &'static str, path: &Path, reason: impl Into<String>) -> TlsFileError {
    TlsFileError {
        key,
        path: path.to_owned(),
        reason: reason.into(),
    }
}

fn read(key: &'static str, path: &Path) -> Result<Vec<u8>, TlsFileError> {
    std::fs::read(path).map_err(|err| fail(key, path, format!("cannot be read: {err}")))
}

/// Checks that `pem` holds at least one certificate, and nothing that is not valid PEM.
fn certificates(key: &'static str, path: &Path, pem: &[u8]) -> Result<(), TlsFileError> {
    let mut count = 0;
    for certificate in CertificateDer::pem_slice_iter(pem) {
        certificate.map_err(|err| fail(key, path, format!("is not valid PEM: {err}")))?;
        count += 1;
    }
    match count {
        0 => Err(fail(key, path, "holds no PEM certificate")),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AMQPS: &str = "amqps://mq.internal:5671/%2f";

    fn tls(ca: Option<&Path>, cert: Option<&Path>, key: Option<&Path>) -> BrokerTls {
        BrokerTls {
            ca_file: ca.map(Path::to_owned),
            client_cert_file: cert.map(Path::to_owned),
            client_key_file: key.map(Path::to_owned),
        }
    }

    #[test]
    fn tls_files_need_an_amqps_url_and_a_certificate_needs_its_key() {
        let ca = Path::new("ca.pem");
        assert!(tls(Some(ca), None, None).problems(AMQPS).is_empty());
        assert_eq!(
            tls(Some(ca), None, None).problems("amqp://mq.internal/%2f"),
            [
                "broker.tls is only used with an amqps:// broker.url: use amqps://, or remove broker.tls"
            ]
        );
        assert!(BrokerTls::default().problems("amqp://h/").is_empty());
        let half = tls(None, Some(Path::new("client.pem")), None).problems(AMQPS);
        assert_eq!(
            half,
            [
                "broker.tls.client_cert_file and broker.tls.client_key_file go together: set both for mutual TLS, or neither"
            ]
        );
        let other_half = tls(None, None, Some(Path::new("client.key"))).problems(AMQPS);
        assert_eq!(other_half, half);
    }

    #[test]
    fn relative_paths_are_relative_to_the_config_folder_and_absolute_ones_stay() {
        let mut files = tls(
            Some(Path::new("certs/ca.pem")),
            Some(Path::new("/etc/run-notifier/client.pem")),
            None,
        );
        files.resolve(Path::new("/srv/config"));
        assert_eq!(
            files.ca_file.unwrap(),
            Path::new("/srv/config/certs/ca.pem")
        );
        assert_eq!(
            files.client_cert_file.unwrap(),
            Path::new("/etc/run-notifier/client.pem")
        );
    }

    #[test]
    fn a_missing_or_wrong_file_is_named_with_its_key_and_reason() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let err = tls(Some(&missing), None, None).read().err().unwrap();
        assert!(
            err.to_string().starts_with(&format!(
                "broker.tls.ca_file {}: cannot be read: ",
                missing.display()
            )),
            "{err}"
        );

        let text = dir.path().join("notes.txt");
        std::fs::write(&text, "not a certificate").unwrap();
        let err = tls(Some(&text), None, None).read().err().unwrap();
        assert_eq!(
            err.to_string(),
            format!(
                "broker.tls.ca_file {}: holds no PEM certificate",
                text.display()
            )
        );

        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["client".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let cert_file = dir.path().join("client.pem");
        std::fs::write(&cert_file, cert.pem()).unwrap();
        // A certificate where the key should be.
        let err = tls(None, Some(&cert_file), Some(&cert_file))
            .read()
            .err()
            .unwrap();
        assert_eq!(
            err.to_string(),
            format!(
                "broker.tls.client_key_file {}: holds no PEM private key (PKCS#8, PKCS#1 or SEC1, not encrypted)",
                cert_file.display()
            )
        );

        let key_file = dir.path().join("client.key");
        std::fs::write(&key_file, key.serialize_pem()).unwrap();
        let files = tls(Some(&cert_file), Some(&cert_file), Some(&key_file))
            .read()
            .unwrap();
        assert_eq!(files.ca_pem.as_deref(), Some(cert.pem().as_str()));
        assert!(files.client.is_some());
    }
}
