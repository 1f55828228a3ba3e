//! `[tls]`: TLS on the gRPC listener and the webhook listener, and client
//! certificates (mTLS) on gRPC (served by `crate::tls`): the section, and
//! the [`Material`] its files hold, read and checked (at load, so that
//! `omniroute check` and a start with bad files fail naming the key).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::ClientCertVerifier;
use rustls::sign::CertifiedKey;
use rustls::{InconsistentKeys, RootCertStore};
use serde::{Deserialize, Serialize};

use super::SettingsError;

/// The longest `reload_secs`: a day.
const MAX_RELOAD_SECS: u64 = 24 * 60 * 60;

/// TLS for the listeners. Without `cert_file` and `key_file` both listen on
/// plain TCP.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsSettings {
    /// The server's certificate chain (PEM): its own certificate first, then
    /// the intermediates. Empty, with `key_file` empty: no TLS.
    pub cert_file: PathBuf,
    /// The private key of the first certificate of `cert_file` (PEM: PKCS#8,
    /// PKCS#1 or SEC1).
    pub key_file: PathBuf,
    /// CA certificates (PEM) that gRPC clients' certificates must be signed
    /// by: set, every gRPC connection needs one (mTLS). Empty: clients are
    /// not asked for a certificate.
    pub client_ca_file: PathBuf,
    /// Seconds between looks at the files' modification times; a change
    /// reloads them (as SIGHUP does). 0: on SIGHUP only.
    pub reload_secs: u64,
    /// The webhook listener serves TLS with the same certificate (never
    /// asking callers for theirs). false: it stays plain, for a proxy in
    /// front of it that terminates TLS.
    pub http: bool,
}

impl Default for TlsSettings {
    fn default() -> Self {
        TlsSettings {
            cert_file: PathBuf::new(),
            key_file: PathBuf::new(),
            client_ca_file: PathBuf::new(),
            reload_secs: 30,
            http: true,
        }
    }
}

impl TlsSettings {
    /// Whether the listeners serve TLS (`cert_file` is set).
    pub fn enabled(&self) -> bool {
        is_set(&self.cert_file)
    }

    /// Whether gRPC clients must present a certificate (`client_ca_file`
    /// is set).
    pub fn mutual(&self) -> bool {
        is_set(&self.client_ca_file)
    }

    /// Checks the section: both files or neither, and files that exist,
    /// parse, and hold a key that belongs to the certificate.
    pub fn validate(&self) -> Result<(), SettingsError> {
        if self.reload_secs > MAX_RELOAD_SECS {
            return Err(SettingsError::Invalid {
                key: "tls.reload_secs",
                reason: format!("at most {MAX_RELOAD_SECS} (a day); 0 reloads on SIGHUP only"),
            });
        }
        match (is_set(&self.cert_file), is_set(&self.key_file)) {
            (true, true) => {}
            (false, false) => {
                if self.mutual() {
                    return Err(SettingsError::Invalid {
                        key: "tls.client_ca_file",
                        reason: "client certificates need TLS: set tls.cert_file and tls.key_file"
                            .to_owned(),
                    });
                }
                return Ok(());
            }
            (true, false) => {
                return Err(SettingsError::Invalid {
                    key: "tls.key_file",
                    reason: "must be set when tls.cert_file is".to_owned(),
                });
            }
            (false, true) => {
                return Err(SettingsError::Invalid {
                    key: "tls.cert_file",
                    reason: "must be set when tls.key_file is".to_owned(),
                });
            }
        }
        Material::load(self).map(|_| ())
    }
}

fn is_set(path: &Path) -> bool {
    !path.as_os_str().is_empty()
}

/// The crypto provider of every TLS configuration here: *ring*.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// What the `[tls]` files hold, read and checked: the certified key and,
/// with `client_ca_file`, the verifier of clients' certificates.
#[derive(Debug)]
pub struct Material {
    /// The certificate chain and its signing key.
    pub(crate) key: Arc<CertifiedKey>,
    /// With `client_ca_file`: the verifier of clients' certificates.
    pub(crate) clients: Option<Arc<dyn ClientCertVerifier>>,
}

impl Material {
    /// Reads the files `settings` name (TLS must be on): errors name the
    /// setting and the file, never the contents of the key.
    pub fn load(settings: &TlsSettings) -> Result<Material, SettingsError> {
        Material::load_with(settings, &provider())
    }

    /// [`Material::load`] with a provider of the caller's.
    pub(crate) fn load_with(
        settings: &TlsSettings,
        provider: &Arc<CryptoProvider>,
    ) -> Result<Material, SettingsError> {
        let chain = read_certificates(&settings.cert_file, "tls.cert_file")?;
        let key = read_key(&settings.key_file)?;
        let signing = provider.key_provider.load_private_key(key).map_err(|e| {
            invalid(
                "tls.key_file",
                format!(
                    "{} is not a private key rustls can use: {e}",
                    settings.key_file.display()
                ),
            )
        })?;
        let key = CertifiedKey::new(chain, signing);
        match key.keys_match() {
            Ok(()) | Err(rustls::Error::InconsistentKeys(InconsistentKeys::Unknown)) => {}
            Err(rustls::Error::InconsistentKeys(_)) => {
                return Err(invalid(
                    "tls.key_file",
                    format!(
                        "the key in {} does not match the certificate in tls.cert_file {}",
                        settings.key_file.display(),
                        settings.cert_file.display()
                    ),
                ));
            }
            Err(e) => {
                return Err(invalid(
                    "tls.cert_file",
                    format!(
                        "{} does not start with a valid certificate: {e}",
                        settings.cert_file.display()
                    ),
                ));
            }
        }
        let clients = if settings.mutual() {
            Some(client_verifier(&settings.client_ca_file, provider)?)
        } else {
            None
        };
        Ok(Material {
            key: Arc::new(key),
            clients,
        })
    }
}

pub(crate) fn invalid(key: &'static str, reason: String) -> SettingsError {
    SettingsError::Invalid { key, reason }
}

/// What went wrong reading PEM from `path`, without echoing what is in it.
fn pem_error(key: &'static str, path: &Path, error: pem::Error) -> SettingsError {
    let reason = match error {
        pem::Error::Io(e) => format!("cannot read {}: {e}", path.display()),
        pem::Error::NoItemsFound => format!("no PEM item of the right kind in {}", path.display()),
        _ => format!("{} is not valid PEM", path.display()),
    };
    invalid(key, reason)
}

fn read_certificates(
    path: &Path,
    key: &'static str,
) -> Result<Vec<CertificateDer<'static>>, SettingsError> {
    let certificates = CertificateDer::pem_file_iter(path)
        .map_err(|e| pem_error(key, path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(key, path, e))?;
    if certificates.is_empty() {
        return Err(invalid(
            key,
            format!(
                "no certificate (\"-----BEGIN CERTIFICATE-----\") in {}",
                path.display()
            ),
        ));
    }
    Ok(certificates)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, SettingsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| match e {
        pem::Error::NoItemsFound => invalid(
            "tls.key_file",
            format!(
                "no private key (\"-----BEGIN PRIVATE KEY-----\", RSA or EC) in {}",
                path.display()
            ),
        ),
        other => pem_error("tls.key_file", path, other),
    })
}

fn client_verifier(
    path: &Path,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<dyn ClientCertVerifier>, SettingsError> {
    let mut roots = RootCertStore::empty();
    for certificate in read_certificates(path, "tls.client_ca_file")? {
        roots.add(certificate).map_err(|e| {
            invalid(
                "tls.client_ca_file",
                format!("{} holds a certificate that is no CA: {e}", path.display()),
            )
        })?;
    }
    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::clone(provider))
        .build()
        .map_err(|e| {
            invalid(
                "tls.client_ca_file",
                format!("cannot verify clients with {}: {e}", path.display()),
            )
        })
}

/// Certificates for tests: a CA and leaves it signs.
#[cfg(test)]
pub(crate) mod testing {
    use std::path::{Path, PathBuf};

    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
        KeyPair, KeyUsagePurpose,
    };

    /// A certificate and its key, in PEM.
    pub(crate) struct Leaf {
        pub(crate) cert_pem: String,
        pub(crate) key_pem: String,
        pub(crate) der: Vec<u8>,
    }

    /// A CA that signs leaves.
    pub(crate) struct Authority {
        pub(crate) cert_pem: String,
        issuer: Issuer<'static, KeyPair>,
    }

    impl Authority {
        pub(crate) fn new(name: &str) -> Authority {
            let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
            params.distinguished_name.push(DnType::CommonName, name);
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
            let key = KeyPair::generate().unwrap();
            let cert = params.self_signed(&key).unwrap();
            Authority {
                cert_pem: cert.pem(),
                issuer: Issuer::new(params, key),
            }
        }

        /// A server certificate for `name`.
        pub(crate) fn server(&self, name: &str) -> Leaf {
            self.leaf(name, ExtendedKeyUsagePurpose::ServerAuth)
        }

        fn leaf(&self, name: &str, usage: ExtendedKeyUsagePurpose) -> Leaf {
            let mut params = CertificateParams::new(vec![name.to_owned()]).unwrap();
            params.distinguished_name.push(DnType::CommonName, name);
            params.extended_key_usages = vec![usage];
            let key = KeyPair::generate().unwrap();
            let cert = params.signed_by(&key, &self.issuer).unwrap();
            Leaf {
                cert_pem: cert.pem(),
                key_pem: key.serialize_pem(),
                der: cert.der().to_vec(),
            }
        }
    }

    /// Writes `text` to `dir/name`.
    pub(crate) fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{Authority, write};
    use super::*;
    use crate::settings::refused_key;

    fn files(dir: &Path, authority: &Authority) -> TlsSettings {
        let leaf = authority.server("localhost");
        TlsSettings {
            cert_file: write(dir, "cert.pem", &leaf.cert_pem),
            key_file: write(dir, "key.pem", &leaf.key_pem),
            ..TlsSettings::default()
        }
    }

    #[test]
    fn off_by_default_and_on_with_both_files() {
        assert!(TlsSettings::default().validate().is_ok());
        assert!(!TlsSettings::default().enabled());
        let dir = tempfile::tempdir().unwrap();
        let tls = files(dir.path(), &Authority::new("omniroute test CA"));
        assert!(tls.validate().is_ok());
        assert!(tls.enabled());
        assert!(!tls.mutual());
    }

    #[test]
    fn both_files_or_neither() {
        let dir = tempfile::tempdir().unwrap();
        let tls = files(dir.path(), &Authority::new("omniroute test CA"));
        let no_key = TlsSettings {
            key_file: PathBuf::new(),
            ..tls.clone()
        };
        assert_eq!(refused_key(no_key.validate()), "tls.key_file");
        let no_cert = TlsSettings {
            cert_file: PathBuf::new(),
            ..tls.clone()
        };
        assert_eq!(refused_key(no_cert.validate()), "tls.cert_file");
        let only_ca = TlsSettings {
            client_ca_file: tls.cert_file.clone(),
            ..TlsSettings::default()
        };
        assert_eq!(refused_key(only_ca.validate()), "tls.client_ca_file");
        let forever = TlsSettings {
            reload_secs: u64::MAX,
            ..tls
        };
        assert_eq!(refused_key(forever.validate()), "tls.reload_secs");
    }

    #[test]
    fn files_must_exist_and_parse() {
        let dir = tempfile::tempdir().unwrap();
        let tls = files(dir.path(), &Authority::new("omniroute test CA"));
        let missing = TlsSettings {
            cert_file: dir.path().join("nowhere.pem"),
            ..tls.clone()
        };
        assert_eq!(refused_key(missing.validate()), "tls.cert_file");
        let garbage = write(dir.path(), "garbage.pem", "not a certificate\n");
        let bad_cert = TlsSettings {
            cert_file: garbage.clone(),
            ..tls.clone()
        };
        assert_eq!(refused_key(bad_cert.validate()), "tls.cert_file");
        let bad_key = TlsSettings {
            key_file: garbage.clone(),
            ..tls.clone()
        };
        assert_eq!(refused_key(bad_key.validate()), "tls.key_file");
        // A certificate is not a key, and a key is not a CA.
        let cert_as_key = TlsSettings {
            key_file: tls.cert_file.clone(),
            ..tls.clone()
        };
        assert_eq!(refused_key(cert_as_key.validate()), "tls.key_file");
        let key_as_ca = TlsSettings {
            client_ca_file: tls.key_file.clone(),
            ..tls.clone()
        };
        assert_eq!(refused_key(key_as_ca.validate()), "tls.client_ca_file");
        let bad_ca = TlsSettings {
            client_ca_file: garbage,
            ..tls
        };
        assert_eq!(refused_key(bad_ca.validate()), "tls.client_ca_file");
    }

    #[test]
    fn a_key_of_another_certificate_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let authority = Authority::new("omniroute test CA");
        let tls = files(dir.path(), &authority);
        let other = authority.server("localhost");
        let mismatched = TlsSettings {
            key_file: write(dir.path(), "other-key.pem", &other.key_pem),
            ..tls
        };
        let error = mismatched.validate().unwrap_err().to_string();
        assert!(error.contains("tls.key_file"), "{error}");
        assert!(error.contains("does not match"), "{error}");
    }

    #[test]
    fn errors_never_show_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let authority = Authority::new("omniroute test CA");
        let leaf = authority.server("localhost");
        // A truncated key: the error names the file, not its contents.
        let truncated = &leaf.key_pem[..leaf.key_pem.len() / 2];
        let tls = TlsSettings {
            cert_file: write(dir.path(), "cert.pem", &leaf.cert_pem),
            key_file: write(dir.path(), "key.pem", truncated),
            ..TlsSettings::default()
        };
        let error = tls.validate().unwrap_err().to_string();
        assert!(error.contains("tls.key_file"), "{error}");
        let body: String = leaf
            .key_pem
            .lines()
            .nth(1)
            .unwrap()
            .chars()
            .take(16)
            .collect();
        assert!(!error.contains(&body), "{error}");
    }
}
