//! Findings from fault runs and hostile input, each kept fixed: concurrent
//! webhooks from new senders, cursors the log never issued, per-service
//! health, inbound messages WhatsApp cannot show us.

use omniroute_e2e::TestApp;
use omniroute_proto::v1 as pb;
use tonic::Code;
use tonic_types::StatusExt;

use crate::events::{next, subscribe};
use crate::support::*;
use crate::whatsapp::{app_with_whatsapp, inbound_text, webhook_at};

crate::on_both_stores!(
    concurrent_messages_from_new_senders_land_on_one_contact_each,
    cursors_the_log_never_issued_are_refused,
);

/// A customer who writes several lines in a row (Meta posts each as its own
/// webhook, at once) and several new customers at once: every delivery is
/// answered 200, every message recorded, one contact per sender.
async fn concurrent_messages_from_new_senders_land_on_one_contact_each(app: TestApp) {
    let (mut app, _graph) = app_with_whatsapp(app.backend()).await;
    let senders: Vec<String> = (0..6).map(|i| format!("4917000000{i:02}")).collect();
    let mut posts = tokio::task::JoinSet::new();
    for sender in &senders {
        for line in 0..8 {
            let body = inbound_text(
                &format!("wamid.burst.{sender}.{line}"),
                sender,
                "Nora",
                &format!("line {line}"),
            );
            let addr = app.http_addr;
            posts.spawn(async move { webhook_at(addr, &body).await });
        }
    }
    let answers = posts.join_all().await;
    let failed: Vec<_> = answers.iter().filter(|r| r.status != 200).collect();
    assert!(
        failed.is_empty(),
        "every delivery is acknowledged: {failed:?}"
    );

    let contacts = list_all(&mut app).await;
    assert_eq!(contacts.len(), senders.len(), "one contact per sender");
    for contact in &contacts {
        let timeline = app
            .messaging
            .list_messages(pb::ListMessagesRequest {
                contact: contact.name.clone(),
                page_size: 100,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .messages;
        assert_eq!(timeline.len(), 8, "every line recorded once: {contact:?}");
    }
}

/// A subscriber resuming from a cursor past the log's head (a database
/// restored from an older backup) or from no event of this log would skip
/// events silently; it is refused with OUT_OF_RANGE and told how to resume.
async fn cursors_the_log_never_issued_are_refused(mut app: TestApp) {
    create(&mut app, "Ada", vec![email("ada@example.com")]).await;
    let mut all = subscribe(
        &mut app,
        pb::SubscribeRequest {
            from_beginning: true,
            ..Default::default()
        },
    )
    .await;
    let first = next(&mut all).await;
    drop(all);

    // The cursor the log issued resumes.
    let mut resumed = subscribe(
        &mut app,
        pb::SubscribeRequest {
            after_cursor: first.cursor.clone(),
            ..Default::default()
        },
    )
    .await;
    create(&mut app, "Ben", vec![email("ben@example.com")]).await;
    let after = next(&mut resumed).await;
    assert!(after.cursor > first.cursor);
    drop(resumed);

    // Far past the head, and one step past it: both refused.
    let far = format!("{:016x}{:016x}", u64::MAX >> 1, i64::MAX);
    let step = {
        let (xid, seq) = after.cursor.split_at(16);
        let seq = i64::from_str_radix(seq, 16).unwrap() + 1;
        format!("{xid}{seq:016x}")
    };
    for cursor in [far, step] {
        let err = app
            .events
            .subscribe(pb::SubscribeRequest {
                after_cursor: cursor.clone(),
                ..Default::default()
            })
            .await
            .expect_err("a cursor past the head is refused");
        assert_eq!(err.code(), Code::OutOfRange, "{cursor}: {err:?}");
        let info = err.get_details_error_info().expect("error info");
        assert_eq!(info.reason, "CURSOR_PAST_HEAD");
        assert!(info.metadata.contains_key("head_cursor"));
        assert!(err.message().contains("from the beginning"), "{err:?}");
    }

    // A well-formed cursor before the head that no event sits at (another
    // log's, or pruned): the position just before the first event.
    let (xid, seq) = first.cursor.split_at(16);
    let foreign = format!("{xid}{:016x}", i64::from_str_radix(seq, 16).unwrap() - 1);
    let err = app
        .events
        .subscribe(pb::SubscribeRequest {
            after_cursor: foreign,
            ..Default::default()
        })
        .await
        .expect_err("a cursor of no event is refused");
    assert_eq!(err.code(), Code::OutOfRange);
    assert_eq!(
        err.get_details_error_info().unwrap().reason,
        "CURSOR_UNKNOWN"
    );
}
