//! The operator's commands on the store the settings name: tenants and API
//! keys (`omniroute tenants …`, `omniroute keys …`). A key is printed once,
//! when it is made; the store keeps only its hash.

use std::time::{Duration, SystemTime};

use omniroute_domain::{ApiKey, valid_tenant_id};
use omniroute_store::prelude::*;
use uuid::Uuid;

use crate::Settings;

/// The usage of the commands.
pub const USAGE: &str = "  tenants create ID [--name NAME]
  tenants list
  keys create --tenant ID --scopes S1,S2,… [--name NAME] [--expires-in-days N]
  keys list [--tenant ID]
  keys revoke KEY_ID

Scopes: messages.send messages.read contacts.read contacts.write
preferences.write callbacks.read callbacks.write events.subscribe admin,
or * for every scope but admin.";

/// What a command line asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admin {
    /// Make a tenant.
    CreateTenant {
        id: String,
        name: String,
    },
    ListTenants,
    /// Make a key.
    CreateKey {
        tenant: String,
        scopes: Vec<String>,
        /// What it is for.
        name: String,
        /// Days it is valid; none: until revoked.
        expires_in_days: Option<u64>,
    },
    ListKeys {
        /// Only this tenant's; none: every tenant's.
        tenant: Option<String>,
    },
    RevokeKey {
        id: Uuid,
    },
}

/// Parses `tenants …` or `keys …` (the words after the program name);
/// `None` when the first word is neither.
pub fn parse(words: &[String]) -> Option<Result<Admin, String>> {
    let (group, rest) = words.split_first()?;
    if group != "tenants" && group != "keys" {
        return None;
    }
    Some(parse_admin(group, rest))
}

fn parse_admin(group: &str, rest: &[String]) -> Result<Admin, String> {
    let mut positional = Vec::new();
    let mut flags = std::collections::HashMap::new();
    let mut words = rest.iter();
    while let Some(word) = words.next() {
        if let Some(flag) = word.strip_prefix("--") {
            let value = words
                .next()
                .ok_or_else(|| format!("--{flag} needs a value"))?;
            flags.insert(flag.to_owned(), value.clone());
        } else {
            positional.push(word.clone());
        }
    }
    let flag = |name: &str| flags.get(name).cloned();
    let known = |allowed: &[&str]| match flags.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(unknown) => Err(format!("unknown option --{unknown}")),
        None => Ok(()),
    };
    let action = positional.first().map(String::as_str);
    let args = positional.get(1..).unwrap_or_default();
    match (group, action, args) {
        ("tenants", Some("create"), [id]) => {
            known(&["name"])?;
            if !valid_tenant_id(id) {
                return Err(format!(
                    "{id:?} is not a tenant id: 1 to 63 of a-z, 0-9 and -, starting with a letter or digit"
                ));
            }
            Ok(Admin::CreateTenant {
                id: id.clone(),
                name: flag("name").unwrap_or_default(),
            })
        }
        ("tenants", Some("list"), []) => {
            known(&[])?;
            Ok(Admin::ListTenants)
        }
        ("keys", Some("create"), []) => {
            known(&["tenant", "scopes", "name", "expires-in-days"])?;
            let tenant = flag("tenant").ok_or("keys create needs --tenant")?;
            let scopes: Vec<String> = flag("scopes")
                .ok_or("keys create needs --scopes")?
                .split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect();
            let expires_in_days = match flag("expires-in-days") {
                None => None,
                Some(days) => Some(
                    days.parse::<u64>()
                        .ok()
                        .filter(|d| (1..=3650).contains(d))
                        .ok_or("--expires-in-days takes 1 to 3650")?,
                ),
            };
            Ok(Admin::CreateKey {
                tenant,
                scopes,
                name: flag("name").unwrap_or_default(),
                expires_in_days,
            })
        }
        ("keys", Some("list"), []) => {
            known(&["tenant"])?;
            Ok(Admin::ListKeys {
                tenant: flag("tenant"),
            })
        }
        ("keys", Some("revoke"), [id]) => {
            known(&[])?;
            let id = Uuid::parse_str(id).map_err(|_| format!("{id:?} is not a key id"))?;
            Ok(Admin::RevokeKey { id })
        }
        _ => Err(format!("usage:\n{USAGE}")),
    }
}

fn time(t: SystemTime) -> String {
    jiff::Timestamp::try_from(t)
        .map(|t| t.round(jiff::Unit::Second).unwrap_or(t).to_string())
        .unwrap_or_default()
}

/// One key as `keys list` prints it (never its hash).
fn key_line(key: &ApiKey) -> String {
    format!(
        "{}  {}  {}  {}  created {}  expires {}  {}",
        key.id,
        key.tenant,
        if key.name.is_empty() { "-" } else { &key.name },
        key.scopes.join(","),
        time(key.create_time),
        key.expire_time.map_or_else(|| "never".to_owned(), time),
        match key.revoke_time {
            Some(t) => format!("REVOKED {}", time(t)),
            None => "active".to_owned(),
        },
    )
}

/// Carries out `admin` on the settings' store; what to print.
pub async fn run(settings: &Settings, admin: Admin) -> anyhow::Result<String> {
    let store = crate::server::open_store(settings).await?;
    run_on(store.as_ref(), admin).await
}

/// [`run`] on an open store.
pub async fn run_on(store: &dyn Store, admin: Admin) -> anyhow::Result<String> {
    Ok(match admin {
        Admin::CreateTenant { id, name } => {
            let tenant = store.create_tenant(&id, &name).await?;
            format!("tenant {} created", tenant.id)
        }
        Admin::ListTenants => store
            .list_tenants()
            .await?
            .iter()
            .map(|t| {
                format!(
                    "{}  {}  created {}",
                    t.id,
                    t.display_name,
                    time(t.create_time)
                )
            })
            .collect::<Vec<_>>()
            .join("\n"),
        Admin::CreateKey {
            tenant,
            scopes,
            name,
            expires_in_days,
        } => {
            let expire_time =
                expires_in_days.map(|d| SystemTime::now() + Duration::from_secs(d * 86_400));
            let issued = crate::auth::issue(store, &tenant, &name, &scopes, expire_time).await?;
            format!(
                "{}\n\nThe key above is shown once; keep it secret (callers send \
                 \"authorization: Bearer <key>\").\n{}",
                issued.token,
                key_line(&issued.record)
            )
        }
        Admin::ListKeys { tenant } => store
            .list_api_keys(tenant.as_deref())
            .await?
            .iter()
            .map(key_line)
            .collect::<Vec<_>>()
            .join("\n"),
        Admin::RevokeKey { id } => {
            let key = store.revoke_api_key(None, id).await?;
            format!("revoked: {}", key_line(&key))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(line: &str) -> Vec<String> {
        line.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn command_lines() {
        assert_eq!(parse(&words("serve")), None);
        assert_eq!(
            parse(&words("tenants create acme --name Acme")),
            Some(Ok(Admin::CreateTenant {
                id: "acme".into(),
                name: "Acme".into()
            }))
        );
        assert_eq!(
            parse(&words(
                "keys create --tenant acme --scopes messages.send,messages.read --expires-in-days 30"
            )),
            Some(Ok(Admin::CreateKey {
                tenant: "acme".into(),
                scopes: vec!["messages.send".into(), "messages.read".into()],
                name: String::new(),
                expires_in_days: Some(30),
            }))
        );
        for bad in [
            "tenants create Not_A_Tenant",
            "keys create --scopes admin",
            "keys create --tenant acme",
            "keys create --tenant acme --scopes admin --expires-in-days 0",
            "keys revoke nope",
            "keys list --colour red",
            "keys rotate",
        ] {
            assert!(matches!(parse(&words(bad)), Some(Err(_))), "{bad}");
        }
    }
}
