//! `[tls]`: TLS on the gRPC listener and the webhook listener, and client
//! certificates (mTLS) on gRPC (see `crate::tls`).

use std::path::{Path, PathBuf};

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
        crate::tls::Material::load(self).map(|_| ())
    }
}

fn is_set(path: &Path) -> bool {
    !path.as_os_str().is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::refused_key;
    use crate::tls::testing::{Authority, write};

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
