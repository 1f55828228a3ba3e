//! Secrets read from files, as container platforms mount them
//! (`/run/secrets/…`): a secret setting `x` may be given as `x_file` in the
//! settings file (`access_token_file = "/run/secrets/wa_token"`) or as
//! `OMNIROUTE__…__X_FILE` in the environment. The file is read at start,
//! without a final line break. Setting a secret both ways in one place is
//! refused, and so is a file that cannot be read; errors name the setting,
//! never the contents.

use std::path::Path;

use figment::providers::{Format as _, Toml};
use figment::value::{Dict, Map, Value};
use figment::{Metadata, Profile, Provider};

use super::SettingsError;

/// The secret settings, as environment variables name them (the settings
/// file's keys are the same, lower case: `whatsapp.access_token`).
pub(super) const SECRET_VARS: [&str; 11] = [
    "OMNIROUTE__STORE__URL",
    "OMNIROUTE__API__PAGE_TOKEN_SECRET",
    "OMNIROUTE__WHATSAPP__ACCESS_TOKEN",
    "OMNIROUTE__WHATSAPP__APP_SECRET",
    "OMNIROUTE__WHATSAPP__VERIFY_TOKEN",
    "OMNIROUTE__EMAIL__PASSWORD",
    "OMNIROUTE__EMAIL__WEBHOOK_SECRET",
    "OMNIROUTE__EMAIL__UNSUBSCRIBE_SECRET",
    "OMNIROUTE__VOICE__AUTH_TOKEN",
    "OMNIROUTE__SANDBOX__WEBHOOK_SECRET",
    "OMNIROUTE__ENDPOINTS__SECRET_KEY",
];

/// The contents of the secret file `path`, which `setting` names.
fn read(setting: &str, path: &str) -> Result<String, SettingsError> {
    let contents = std::fs::read_to_string(path)
        .map_err(|e| SettingsError::Load(format!("{setting}: cannot read {path}: {e}")))?;
    let contents = contents
        .strip_suffix("\r\n")
        .or_else(|| contents.strip_suffix('\n'))
        .unwrap_or(&contents);
    Ok(contents.to_owned())
}

/// Replaces each `<secret>_FILE` variable by `<secret>` with the file's
/// contents. Other variables pass as they are.
pub(super) fn from_files(
    vars: Vec<(String, String)>,
) -> Result<Vec<(String, String)>, SettingsError> {
    let mut out = Vec::with_capacity(vars.len());
    for (name, value) in &vars {
        let Some(secret) = name
            .strip_suffix("_FILE")
            .filter(|s| SECRET_VARS.contains(s))
        else {
            out.push((name.clone(), value.clone()));
            continue;
        };
        if vars.iter().any(|(other, _)| other == secret) {
            return Err(SettingsError::Load(format!(
                "both {secret} and {name} are set; set one"
            )));
        }
        out.push((secret.to_owned(), read(name, value)?));
    }
    Ok(out)
}

/// The settings file, its `<secret>_file` keys replaced by the secrets
/// they name. Errors in its values still name the file.
pub(super) struct FileWithSecrets {
    metadata: Metadata,
    data: Map<Profile, Dict>,
}

impl FileWithSecrets {
    /// Reads and parses `path` and the secret files it names.
    pub(super) fn read(path: &Path) -> Result<FileWithSecrets, SettingsError> {
        let file = Toml::file_exact(path);
        let mut data = file
            .data()
            .map_err(|e| SettingsError::Load(super::describe(e)))?;
        for dict in data.values_mut() {
            secrets_in(dict)?;
        }
        Ok(FileWithSecrets {
            metadata: file.metadata(),
            data,
        })
    }
}

impl Provider for FileWithSecrets {
    fn metadata(&self) -> Metadata {
        self.metadata.clone()
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        Ok(self.data.clone())
    }
}

/// Replaces the `<secret>_file` keys of one profile's settings.
fn secrets_in(dict: &mut Dict) -> Result<(), SettingsError> {
    for var in SECRET_VARS {
        let Ok([section, name]) = <[String; 2]>::try_from(super::key_path(var)) else {
            continue;
        };
        let Some(Value::Dict(_, table)) = dict.get_mut(&section) else {
            continue;
        };
        let key = format!("{name}_file");
        let Some(path) = table.remove(&key) else {
            continue;
        };
        let setting = format!("{section}.{key}");
        if table.contains_key(&name) {
            return Err(SettingsError::Load(format!(
                "both {section}.{name} and {setting} are set; set one"
            )));
        }
        let Some(path) = path.as_str() else {
            return Err(SettingsError::Load(format!(
                "{setting}: expected the path of a file"
            )));
        };
        let secret = read(&setting, path)?;
        table.insert(name, Value::from(secret));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::settings::Settings;
    use crate::settings::tests::env;

    #[test]
    fn secrets_come_from_files_named_by_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("voice_token");
        std::fs::write(&token, "twilio-token-from-a-file\n").unwrap();
        let db = dir.path().join("db_url");
        std::fs::write(&db, "postgres://omniroute:pw@db:5432/omniroute").unwrap();
        let token_path = token.to_string_lossy().into_owned();
        let db_path = db.to_string_lossy().into_owned();
        let s = Settings::load(
            None,
            env(&[
                ("OMNIROUTE__VOICE__AUTH_TOKEN_FILE", &token_path),
                ("OMNIROUTE__STORE__URL_FILE", &db_path),
            ]),
        )
        .unwrap();
        assert_eq!(s.voice.auth_token.expose(), "twilio-token-from-a-file");
        assert_eq!(
            s.store.url.expose(),
            "postgres://omniroute:pw@db:5432/omniroute"
        );
        // Both ways at once, or a file that is not there: refused, naming
        // the variable and never the secret.
        let both = Settings::load(
            None,
            env(&[
                ("OMNIROUTE__VOICE__AUTH_TOKEN_FILE", &token_path),
                ("OMNIROUTE__VOICE__AUTH_TOKEN", "inline"),
            ]),
        )
        .unwrap_err()
        .to_string();
        assert!(both.contains("OMNIROUTE__VOICE__AUTH_TOKEN_FILE"), "{both}");
        let missing = Settings::load(
            None,
            env(&[("OMNIROUTE__STORE__URL_FILE", "/nonexistent/db_url")]),
        )
        .unwrap_err()
        .to_string();
        assert!(missing.contains("OMNIROUTE__STORE__URL_FILE"), "{missing}");
        assert!(!missing.contains("postgres://"), "{missing}");
        // A key of another kind that ends in _FILE is left alone (and is
        // then an unknown key).
        let other = Settings::load(None, env(&[("OMNIROUTE__GRPC__LISTEN_FILE", "x")]))
            .unwrap_err()
            .to_string();
        assert!(other.contains("listen_file"), "{other}");
    }

    #[test]
    fn secrets_come_from_files_named_by_the_settings_file() {
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("wa_token");
        std::fs::write(&token, "EAAG-token-from-a-file\n").unwrap();
        let secret = dir.path().join("app_secret");
        std::fs::write(&secret, "app-secret-from-a-file").unwrap();
        let config = dir.path().join("omniroute.toml");
        let write = |text: String| std::fs::write(&config, text).unwrap();
        write(format!(
            "[whatsapp]\naccess_token_file = \"{}\"\napp_secret_file = \"{}\"\n",
            token.display(),
            secret.display()
        ));
        let s = Settings::load(Some(&config), env(&[])).unwrap();
        assert_eq!(s.whatsapp.access_token.expose(), "EAAG-token-from-a-file");
        assert_eq!(s.whatsapp.app_secret.expose(), "app-secret-from-a-file");
        // The environment still wins over the file, as for any setting.
        let s = Settings::load(
            Some(&config),
            env(&[("OMNIROUTE__WHATSAPP__ACCESS_TOKEN", "from-the-environment")]),
        )
        .unwrap();
        assert_eq!(s.whatsapp.access_token.expose(), "from-the-environment");

        // Both ways in the file, a file that is not there, or a path that is
        // not a string: refused, naming the key and never the secret.
        write(format!(
            "[whatsapp]\naccess_token = \"inline\"\naccess_token_file = \"{}\"\n",
            token.display()
        ));
        let both = Settings::load(Some(&config), env(&[]))
            .unwrap_err()
            .to_string();
        assert!(both.contains("whatsapp.access_token_file"), "{both}");
        assert!(!both.contains("inline"), "{both}");
        write("[store]\nurl_file = \"/nonexistent/db_url\"\n".into());
        let missing = Settings::load(Some(&config), env(&[]))
            .unwrap_err()
            .to_string();
        assert!(missing.contains("store.url_file"), "{missing}");
        write("[voice]\nauth_token_file = 7\n".into());
        let not_a_path = Settings::load(Some(&config), env(&[]))
            .unwrap_err()
            .to_string();
        assert!(not_a_path.contains("voice.auth_token_file"), "{not_a_path}");
        // Only secrets have a _file form.
        write("[grpc]\nlisten_file = \"x\"\n".into());
        let other = Settings::load(Some(&config), env(&[]))
            .unwrap_err()
            .to_string();
        assert!(other.contains("listen_file"), "{other}");
    }

    #[test]
    fn every_listed_secret_is_a_setting() {
        // A name in the list that is no setting would be an unknown key.
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("secret");
        std::fs::write(&file, "postgres://omniroute:pw@db:5432/omniroute\n").unwrap();
        let path = file.to_string_lossy().into_owned();
        // A key must be one: base64 of 32 bytes.
        let key_file = dir.path().join("key");
        std::fs::write(&key_file, format!("{}\n", "QUFB".repeat(10) + "QUE=")).unwrap();
        let key_path = key_file.to_string_lossy().into_owned();
        for var in super::SECRET_VARS {
            let name = format!("{var}_FILE");
            let path = if var.ends_with("__SECRET_KEY") {
                &key_path
            } else {
                &path
            };
            Settings::load(None, env(&[(name.as_str(), path.as_str())]))
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }
}
