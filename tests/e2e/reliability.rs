//! Findings from fault runs and hostile input, each kept fixed: concurrent
//! webhooks from new senders, cursors the log never issued, per-service
//! health, inbound messages WhatsApp cannot show us.

use omniroute_e2e::TestApp;
use omniroute_proto::v1 as pb;

use crate::support::*;
use crate::whatsapp::{app_with_whatsapp, inbound_text, webhook_at};

crate::on_both_stores!(concurrent_messages_from_new_senders_land_on_one_contact_each,);

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
    assert!(failed.is_empty(), "every delivery is acknowledged: {failed:?}");

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
