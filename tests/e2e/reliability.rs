//! Findings from fault runs and hostile input, each kept fixed: concurrent
//! webhooks from new senders, cursors the log never issued, inbound
//! messages WhatsApp cannot show us, reactions to our messages, storms of
//! duplicate statuses.

use omniroute_e2e::TestApp;
use omniroute_proto::v1 as pb;
use tonic::Code;
use tonic_types::StatusExt;

use crate::events::{next, subscribe};
use crate::support::*;
use crate::whatsapp::{
    NUMBER_ID, app_with_whatsapp, envelope, inbound_text, now_secs, send_text, status, wait_status,
    webhook, webhook_at,
};
use serde_json::json;

crate::on_both_stores!(
    concurrent_messages_from_new_senders_land_on_one_contact_each,
    cursors_the_log_never_issued_are_refused,
    what_whatsapp_cannot_show_is_recorded_and_reactions_name_our_message,
    a_storm_of_duplicate_out_of_order_statuses_moves_each_message_once,
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
        let recorded = timeline(&mut app, &contact.name).await;
        assert_eq!(recorded.len(), 8, "every line recorded once: {contact:?}");
    }
}

/// A subscriber resuming from a cursor past the log's head (a database
/// restored from an older backup) or from no event of this log would skip
/// events silently; it is refused with OUT_OF_RANGE and told how to resume.
async fn cursors_the_log_never_issued_are_refused(mut app: TestApp) {
    create(&mut app, "Ada", vec![email("ada@example.com")]).await;
    let mut all = subscribe(&mut app, from_the_beginning()).await;
    let first = next(&mut all).await;
    drop(all);

    // The cursor the log issued resumes.
    let mut resumed = subscribe(&mut app, after_cursor(&first.cursor)).await;
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
            .subscribe(after_cursor(&cursor))
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
        .subscribe(after_cursor(&foreign))
        .await
        .expect_err("a cursor of no event is refused");
    assert_eq!(err.code(), Code::OutOfRange);
    assert_eq!(
        err.get_details_error_info().unwrap().reason,
        "CURSOR_UNKNOWN"
    );
}

pub(crate) async fn timeline(app: &mut TestApp, contact: &str) -> Vec<pb::Message> {
    app.messaging
        .list_messages(pb::ListMessagesRequest {
            contact: contact.to_owned(),
            page_size: 100,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .messages
}

/// A message type the Cloud API cannot show us (error 131051) is still the
/// customer writing: recorded with Meta's error, and it opens the service
/// window. A reaction to a message we sent names that message.
async fn what_whatsapp_cannot_show_is_recorded_and_reactions_name_our_message(app: TestApp) {
    let (mut app, _graph) = app_with_whatsapp(app.backend()).await;
    let unsupported = envelope(json!({
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "4930123456", "phone_number_id": NUMBER_ID},
        "contacts": [{"profile": {"name": "Olga"}, "wa_id": "4915700000001"}],
        "messages": [{
            "from": "4915700000001", "id": "wamid.unsupported.1", "timestamp": now_secs(),
            "type": "unsupported",
            "errors": [{"code": 131051, "title": "Message type unknown", "message": "Message type unknown",
                        "error_data": {"details": "Message type is currently not supported."}}]
        }]
    }));
    assert_eq!(webhook(&app, &unsupported).await.status, 200);
    let olga = lookup(
        &mut app,
        pb::lookup_contact_request::Key::Address("+4915700000001".into()),
    )
    .await
    .expect("the sender became a contact");
    assert!(
        !olga.service_windows.is_empty(),
        "the customer wrote: the window is open"
    );
    let messages = timeline(&mut app, &olga.name).await;
    assert_eq!(messages.len(), 1, "recorded: {messages:#?}");
    match &messages[0].content.as_ref().unwrap().kind {
        Some(pb::content::Kind::Unsupported(u)) => {
            assert_eq!(u.error_code, "131051");
            assert!(u.error_message.contains("not supported"), "{u:?}");
        }
        other => panic!("{other:?}"),
    }

    // The customer reacts to a message we sent them.
    let ours = send_text(&mut app, "+49 157 00000002").await;
    let sent = wait_status(&mut app, &ours.name, pb::MessageStatus::Sent).await;
    let reaction = envelope(json!({
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "4930123456", "phone_number_id": NUMBER_ID},
        "contacts": [{"profile": {"name": "Anna"}, "wa_id": "4915700000002"}],
        "messages": [{
            "from": "4915700000002", "id": "wamid.reaction.1", "timestamp": now_secs(),
            "type": "reaction",
            "reaction": {"message_id": sent.provider_message_id, "emoji": "👍"}
        }]
    }));
    assert_eq!(webhook(&app, &reaction).await.status, 200);
    let messages = timeline(&mut app, &ours.contact).await;
    let reacted = messages
        .iter()
        .find(|m| m.provider_message_id == "wamid.reaction.1")
        .expect("the reaction is recorded");
    assert_eq!(reacted.reply_to, ours.name);
    match &reacted.content.as_ref().unwrap().kind {
        Some(pb::content::Kind::Reaction(r)) => {
            assert_eq!(r.message, ours.name, "the reaction names our message");
            assert_eq!(r.emoji, "👍");
        }
        other => panic!("{other:?}"),
    }
}

/// Meta redelivers, reorders and sends statuses concurrently: a hundred
/// deliveries of sent, delivered and read for each of three messages, all
/// at once. Every answer is 200, and each message moves through each status
/// once, forward only.
async fn a_storm_of_duplicate_out_of_order_statuses_moves_each_message_once(app: TestApp) {
    let (mut app, _graph) = app_with_whatsapp(app.backend()).await;
    let mut messages = Vec::new();
    for i in 0..3 {
        let accepted = send_text(&mut app, &format!("+49 157 1000000{i}")).await;
        let sent = wait_status(&mut app, &accepted.name, pb::MessageStatus::Sent).await;
        messages.push(sent);
    }
    let mut posts = tokio::task::JoinSet::new();
    for round in 0..100 {
        for message in &messages {
            let kind = ["read", "delivered", "sent"][round % 3];
            let ours = message.name.trim_start_matches("messages/");
            let body = status(&message.provider_message_id, kind, ours);
            let addr = app.http_addr;
            posts.spawn(async move { webhook_at(addr, &body).await });
        }
    }
    let answers = posts.join_all().await;
    assert!(
        answers.iter().all(|r| r.status == 200),
        "every delivery is acknowledged"
    );
    use pb::MessageStatus::*;
    for message in &messages {
        let read = wait_status(&mut app, &message.name, Read).await;
        let history: Vec<i32> = read.status_history.iter().map(|h| h.status).collect();
        // Read may come first (read implies delivered; a late delivered
        // then tells nothing new and is not recorded).
        let with = vec![Accepted as i32, Sent as i32, Delivered as i32, Read as i32];
        let without = vec![Accepted as i32, Sent as i32, Read as i32];
        assert!(
            history == with || history == without,
            "one transition per status, forward only: {read:#?}"
        );
    }
}
