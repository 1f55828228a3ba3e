//! The invariants on this repository; then each rule on the repository with
//! one violation added in memory, which it must name by file and line, and
//! with look-alikes (comments, strings, test code, the allowed places) it
//! must leave alone.

use std::path::Path;
use std::sync::LazyLock;

use omniroute_tidy::rules::Known;
use omniroute_tidy::{Rule, Tree, check, check_with};

static REPOSITORY: LazyLock<Tree> = LazyLock::new(|| {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    Tree::load(root).unwrap()
});

#[test]
fn the_repository_keeps_its_invariants() {
    let found = check(&REPOSITORY);
    let report: Vec<String> = found.iter().map(ToString::to_string).collect();
    assert!(
        found.is_empty(),
        "tidy found {}:\n{}",
        found.len(),
        report.join("\n")
    );
}

/// The repository with `code` appended to `file` (which must exist), and
/// the line `code`'s first line lands on.
fn appended(file: &str, code: &str) -> (Tree, usize) {
    let text = REPOSITORY
        .files
        .get(file)
        .unwrap_or_else(|| panic!("{file} is not in the tree"));
    let line = text.lines().count() + 1;
    let mut changed = text.clone();
    if !changed.ends_with('\n') {
        changed.push('\n');
    }
    changed.push_str(code);
    (REPOSITORY.clone().with(file, changed), line)
}

/// What `check` finds, as (rule, file, line).
fn found(tree: &Tree) -> Vec<(Rule, String, usize)> {
    check(tree)
        .into_iter()
        .map(|v| (v.rule, v.file, v.line))
        .collect()
}

fn one(rule: Rule, file: &str, line: usize) -> Vec<(Rule, String, usize)> {
    vec![(rule, file.to_owned(), line)]
}

#[test]
fn proto_outside_api_is_named() {
    let file = "services/server/src/webhooks.rs";
    let (tree, line) = appended(
        file,
        "use omniroute_proto::v1 as pb;\nfn leak(_: pb::Message) {}\n",
    );
    assert_eq!(
        found(&tree),
        vec![
            (Rule::Proto, file.to_owned(), line),
            (Rule::Proto, file.to_owned(), line + 1)
        ]
    );

    let file = "services/store/src/lib.rs";
    let (tree, line) = appended(file, "fn leak(_: omniroute_proto::v1::Message) {}\n");
    // The store naming proto breaks two rules: proto, and the crates it may use.
    assert_eq!(
        found(&tree),
        vec![
            (Rule::Crates, file.to_owned(), line),
            (Rule::Proto, file.to_owned(), line)
        ]
    );
}

#[test]
fn proto_in_its_places_in_tests_and_in_words_is_not() {
    for (file, code) in [
        (
            "services/server/src/api/contacts.rs",
            "fn fine(_: pb::Contact) {}\n",
        ),
        (
            "services/server/tests/binary/main.rs",
            "fn fine(_: omniroute_proto::v1::Contact) {}\n",
        ),
        (
            "tests/src/lib.rs",
            "fn fine(_: omniroute_proto::v1::Contact) {}\n",
        ),
        (
            "services/server/src/webhooks.rs",
            "#[cfg(test)]\nmod synthetic {\n    use omniroute_proto::v1 as pb;\n    fn fine(_: pb::Contact) {}\n}\n",
        ),
        (
            "services/server/src/webhooks.rs",
            "/// Not `omniroute_proto::v1` nor `pb::Contact`: /* pb::X */ words.\nconst _: &str = \"pb::Contact\";\nconst _: &str = r#\"omniroute_proto\"#;\n",
        ),
    ] {
        let (tree, _) = appended(file, code);
        assert_eq!(found(&tree), vec![], "{file}: {code}");
    }
}

#[test]
fn the_store_or_an_adapter_naming_the_server_is_named() {
    for file in [
        "services/store/src/lib.rs",
        "adapters/whatsapp/src/lib.rs",
        "adapters/whatsapp/tests/adapter/main.rs",
    ] {
        let (tree, line) = appended(file, "fn leak(_: omniroute::Settings) {}\n");
        assert_eq!(found(&tree), one(Rule::Crates, file, line), "{file}");
    }
}

#[test]
fn crates_naming_what_their_row_leaves_out_are_named() {
    for (file, code) in [
        ("adapters/email/src/lib.rs", "use omniroute_store::Store;\n"),
        (
            "adapters/voice/src/lib.rs",
            "use omniroute_domain::Message;\n",
        ),
        ("domain/src/lib.rs", "use omniroute_store::Store;\n"),
        (
            "adapters/channel/src/lib.rs",
            "use omniroute_domain::Message;\n",
        ),
    ] {
        let (tree, line) = appended(file, code);
        assert_eq!(
            found(&tree),
            one(Rule::Crates, file, line),
            "{file}: {code}"
        );
    }
    // What the rows allow: the domain the channel crate, an adapter
    // another, the store the domain, a crate itself.
    for (file, code) in [
        ("domain/src/lib.rs", "use omniroute_channel::Channel;\n"),
        (
            "adapters/sandbox/src/lib.rs",
            "use omniroute_email::EmailAdapter;\n",
        ),
        (
            "services/store/src/lib.rs",
            "use omniroute_domain::Message;\n",
        ),
        (
            "adapters/voice/tests/calls.rs",
            "use omniroute_voice::VoiceAdapter;\n",
        ),
    ] {
        let (tree, _) = appended(file, code);
        assert_eq!(found(&tree), vec![], "{file}: {code}");
    }
}

#[test]
fn manifests_allowing_what_the_rows_leave_out_are_named() {
    for (file, section, dep) in [
        (
            "adapters/whatsapp/Cargo.toml",
            "[dependencies]",
            "omniroute-store.workspace = true",
        ),
        (
            "services/store/Cargo.toml",
            "[dependencies]",
            "omniroute = { path = \"../server\" }",
        ),
        (
            "domain/Cargo.toml",
            "[dev-dependencies]",
            "store = { package = \"omniroute-store\", path = \"../services/store\" }",
        ),
        (
            "adapters/channel/Cargo.toml",
            "[build-dependencies]",
            "omniroute-proto.workspace = true",
        ),
    ] {
        let (tree, line) = appended(file, &format!("\n{section}\n{dep}\n"));
        assert_eq!(
            found(&tree),
            one(Rule::Crates, file, line + 2),
            "{file}: {dep}"
        );
    }
    let file = "adapters/voice/Cargo.toml";
    let (tree, line) = appended(
        file,
        "\n[dependencies.omniroute-store]\npath = \"../../services/store\"\n",
    );
    assert_eq!(found(&tree), one(Rule::Crates, file, line + 1));
}

#[test]
fn a_crate_of_ours_needs_a_row() {
    let tree = REPOSITORY
        .clone()
        .with(
            "conversations/Cargo.toml",
            "[package]\nname = \"omniroute-conversations\"\n",
        )
        .with("conversations/src/lib.rs", "//! Conversations.\n");
    assert_eq!(
        found(&tree),
        one(Rule::Crates, "conversations/Cargo.toml", 1)
    );
}

#[test]
fn an_import_up_the_layers_is_named() {
    for (file, code) in [
        // Routing reaching the gRPC face, written three ways.
        (
            "services/server/src/routing/policy.rs",
            "use crate::api::ApiError;\n",
        ),
        (
            "services/server/src/routing/policy.rs",
            "use super::super::api::{ApiError, convert};\n",
        ),
        (
            "services/server/src/routing/policy.rs",
            "fn up() { let _ = crate::webhooks::Ingress::new; }\n",
        ),
        // The pipeline reaching a use case, settings the pipeline, a face the root.
        (
            "services/server/src/pipeline/dispatcher.rs",
            "use crate::app::callbacks::Tap;\n",
        ),
        (
            "services/server/src/settings/email.rs",
            "use crate::pipeline::statuses::StatusChannel;\n",
        ),
        (
            "services/server/src/api/contacts.rs",
            "use crate::server::open_store;\n",
        ),
        // Through the root's re-export.
        (
            "services/server/src/settings.rs",
            "use crate::Application;\n",
        ),
    ] {
        let (tree, line) = appended(file, code);
        let found = found(&tree);
        assert!(
            !found.is_empty()
                && found
                    .iter()
                    .all(|f| *f == (Rule::Layers, file.to_owned(), line)),
            "{file}: {code}: {found:?}"
        );
    }
}

#[test]
fn an_import_is_named_on_its_own_line() {
    let file = "services/server/src/routing/policy.rs";
    let (tree, line) = appended(
        file,
        "use crate::{\n    settings::Settings,\n    api::ApiError,\n};\n",
    );
    assert_eq!(found(&tree), one(Rule::Layers, file, line + 2));
}

#[test]
fn imports_down_or_within_a_layer_or_in_tests_are_not() {
    for (file, code) in [
        (
            "services/server/src/api/contacts.rs",
            "use crate::routing::Router;\nuse crate::auth::Caller;\n",
        ),
        (
            "services/server/src/webhooks.rs",
            "use crate::app::callbacks::Tap;\n",
        ),
        (
            "services/server/src/pipeline/dispatcher.rs",
            "use super::statuses::Report;\nuse crate::settings::Settings;\n",
        ),
        (
            "services/server/src/routing/policy.rs",
            "use crate::Settings;\n",
        ),
        (
            "services/server/src/server.rs",
            "use crate::api::ApiContext;\n",
        ),
        (
            "services/server/src/settings.rs",
            "#[cfg(test)]\nmod synthetic {\n    use crate::api::ApiError;\n}\n",
        ),
        (
            "services/server/src/settings.rs",
            "#[cfg(all(test, unix))]\nfn synthetic() { let _ = crate::server::open_store; }\n",
        ),
    ] {
        let (tree, _) = appended(file, code);
        assert_eq!(found(&tree), vec![], "{file}: {code}");
    }
    // `any(test, …)` also builds without tests: that is not test code.
    let file = "services/server/src/settings.rs";
    let (tree, line) = appended(
        file,
        "#[cfg(any(test, feature = \"otel\"))]\nuse crate::api::ApiError;\n",
    );
    assert_eq!(found(&tree), one(Rule::Layers, file, line + 1));
}

#[test]
fn a_module_of_the_server_needs_a_row() {
    let file = "services/server/src/conversations.rs";
    let tree = REPOSITORY.clone().with(file, "//! Conversations.\n");
    assert_eq!(found(&tree), one(Rule::Layers, file, 1));
}

#[test]
fn a_source_file_over_a_thousand_lines_is_named() {
    let long = "//! Long.\n".to_owned() + &"const _: () = ();\n".repeat(1000);
    let file = "services/store/src/long.rs";
    let tree = REPOSITORY.clone().with(file, long.clone());
    assert_eq!(found(&tree), one(Rule::Size, file, 1001));
    let at_the_limit: String = long.lines().take(1000).map(|l| format!("{l}\n")).collect();
    let tree = REPOSITORY.clone().with(file, at_the_limit);
    assert_eq!(found(&tree), vec![]);
    for file in [
        "services/store/tests/long.rs",
        "services/server/src/api/long/tests.rs",
        "services/server/src/routing/long_tests.rs",
        "fuzz/fuzz_targets/long.rs",
        "tests/e2e/long.rs",
    ] {
        let tree = REPOSITORY.clone().with(file, long.clone());
        assert_eq!(found(&tree), vec![], "{file}");
    }
}

#[test]
fn a_status_made_outside_the_mapping_is_named() {
    for (file, code) in [
        (
            "services/server/src/webhooks.rs",
            "fn refuse() -> tonic::Status { tonic::Status::internal(\"no\") }\n",
        ),
        (
            "services/server/src/api/contacts.rs",
            "fn refuse() -> Status { Status::new(Code::Internal, \"no\") }\n",
        ),
        (
            "services/server/src/auth.rs",
            "fn refuse() -> Status { Status::not_found(\"no\") }\n",
        ),
    ] {
        let (tree, line) = appended(file, code);
        assert_eq!(
            found(&tree),
            one(Rule::Status, file, line),
            "{file}: {code}"
        );
    }
    for (file, code) in [
        (
            "services/server/src/api/error.rs",
            "fn refuse() -> Status { Status::internal(\"no\") }\n",
        ),
        (
            "services/server/src/api/contacts.rs",
            "fn map(e: ApiError) -> Status { Status::from(e) }\n",
        ),
        (
            "tests/e2e/main.rs",
            "fn fake() -> Status { Status::unavailable(\"down\") }\n",
        ),
    ] {
        let (tree, _) = appended(file, code);
        assert_eq!(found(&tree), vec![], "{file}: {code}");
    }
}

#[test]
fn a_known_exception_that_no_longer_happens_is_named() {
    let stale = [Known {
        rule: Rule::Layers,
        file: "services/server/src/routing/mod.rs",
        what: "pipeline::dispatcher::Adapters",
        why: "a synthetic exception: routing no longer imports the dispatcher",
    }];
    let found: Vec<(Rule, String, usize)> = check_with(&REPOSITORY, &stale)
        .into_iter()
        .map(|v| (v.rule, v.file, v.line))
        .collect();
    assert_eq!(found, one(Rule::Stale, "tidy/src/rules.rs", 1));
    // And one that happens keeps its break out of the report.
    let file = "services/server/src/routing/mod.rs";
    let (tree, _) = appended(file, "use crate::pipeline::dispatcher::Dispatcher;\n");
    let known = [Known {
        rule: Rule::Layers,
        file,
        what: "pipeline",
        why: "a synthetic exception",
    }];
    assert_eq!(check_with(&tree, &known), vec![]);
}
