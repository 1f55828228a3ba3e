//! Authentication as operators meet it: keys made with `omniroute keys`
//! on the store the server uses, and a server that will not serve other
//! hosts without keys.

use std::path::Path;
use std::process::Command;

use omniroute_proto::v1 as pb;
use pb::contact_service_client::ContactServiceClient;
use tonic::Code;

use crate::support::{new_contact, start};

/// Runs `omniroute ARGS` in `dir` with a clean environment plus `env`; its
/// exit success, stdout and stderr.
fn omniroute(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_omniroute"))
        .args(args)
        .current_dir(dir)
        .env_clear()
        .envs(env.iter().copied())
        .output()
        .expect("omniroute runs");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn other_hosts_are_not_served_without_keys() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, _, stderr) = omniroute(
        dir.path(),
        &["serve"],
        &[("OMNIROUTE__GRPC__LISTEN", "0.0.0.0:0")],
    );
    assert!(!ok, "it must refuse");
    assert!(stderr.contains("auth.enabled"), "{stderr}");
    let (ok, _, stderr) = omniroute(
        dir.path(),
        &["check"],
        &[
            ("OMNIROUTE__GRPC__LISTEN", "0.0.0.0:0"),
            ("OMNIROUTE__AUTH__ENABLED", "true"),
        ],
    );
    assert!(ok, "{stderr}");
}

fn with_key(
    key: &str,
) -> impl Fn(pb::CreateContactRequest) -> tonic::Request<pb::CreateContactRequest> {
    let value = format!("Bearer {key}");
    move |message| {
        let mut request = tonic::Request::new(message);
        request
            .metadata_mut()
            .insert("authorization", value.parse().unwrap());
        request
    }
}

#[tokio::test]
async fn keys_made_on_the_command_line_authenticate_calls_until_revoked() {
    // PostgreSQL: the command line and the server use the store at once.
    let url = omniroute_store::testing::fresh_pg_url().await;
    let dir = tempfile::tempdir().unwrap();
    let store = [("OMNIROUTE__STORE__URL", url.as_str())];
    let (ok, out, err) = omniroute(
        dir.path(),
        &["tenants", "create", "acme", "--name", "Acme"],
        &store,
    );
    assert!(ok, "{out}{err}");
    let (ok, out, err) = omniroute(
        dir.path(),
        &[
            "keys",
            "create",
            "--tenant",
            "acme",
            "--scopes",
            "contacts.write,contacts.read",
            "--name",
            "crm",
        ],
        &store,
    );
    assert!(ok, "{out}{err}");
    let key = out.lines().next().unwrap_or_default().trim().to_owned();
    assert!(key.starts_with("omr_"), "{out}");
    // An unknown tenant or scope is refused.
    let (ok, _, err) = omniroute(
        dir.path(),
        &[
            "keys",
            "create",
            "--tenant",
            "nobody",
            "--scopes",
            "contacts.read",
        ],
        &store,
    );
    assert!(!ok && err.contains("tenants"), "{err}");
    let (ok, _, err) = omniroute(
        dir.path(),
        &[
            "keys",
            "create",
            "--tenant",
            "acme",
            "--scopes",
            "everything",
        ],
        &store,
    );
    assert!(!ok && err.contains("unknown scope"), "{err}");

    let server = start(
        dir.path(),
        &[
            ("OMNIROUTE__STORE__URL", url.as_str()),
            ("OMNIROUTE__AUTH__ENABLED", "true"),
            ("OMNIROUTE__AUTH__CACHE_SECS", "0"),
        ],
    );
    let mut contacts = ContactServiceClient::new(server.channel().await);
    let request = || new_contact("Anna", vec![]);
    let err = contacts.create_contact(request()).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    let authed = with_key(&key);
    contacts
        .create_contact(authed(request()))
        .await
        .expect("the key works");

    // Listed without its secret; revoked, refused.
    let (ok, listed, err) = omniroute(dir.path(), &["keys", "list", "--tenant", "acme"], &store);
    assert!(ok, "{err}");
    assert!(
        listed.contains("crm") && listed.contains("active"),
        "{listed}"
    );
    assert!(!listed.contains(&key[21..]), "no secret in the list");
    let id = listed.split_whitespace().next().unwrap();
    let (ok, out, err) = omniroute(dir.path(), &["keys", "revoke", id], &store);
    assert!(ok && out.contains("REVOKED"), "{out}{err}");
    let err = contacts
        .create_contact(authed(request()))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    drop(contacts);
    assert!(server.terminate().success());
}

#[test]
fn authentication_off_says_so_in_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &[]);
    let said = server
        .log()
        .iter()
        .any(|line| line.contains("authentication is off"));
    assert!(said, "{:#?}", server.log());
    assert!(server.terminate().success());
}
