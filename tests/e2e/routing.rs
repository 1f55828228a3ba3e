//! Routing on contacts that change: every send is routed on what the
//! contact is when it is accepted, although servers keep the contacts they
//! route on in memory, and although another replica may have changed the
//! contact since.

use omniroute_e2e::{Backend, TestApp};
use omniroute_proto::v1 as pb;
use tonic::Code;

use crate::support::*;

crate::on_both_stores!(a_change_to_a_contact_reaches_the_next_send);

async fn a_change_to_a_contact_reaches_the_next_send(mut app: TestApp) {
    let name = create(
        &mut app,
        "Anna",
        vec![whatsapp("4915123456789"), email("anna@example.com")],
    )
    .await
    .name;
    // The sender has the contact cached after its first send; the changes
    // go through the same server's other services.
    app.customer_writes("whatsapp", "+4915123456789", "Hello")
        .await;
    let mut changer = app.preferences.clone();
    let mut contacts = app.contacts.clone();
    changes_reach_the_sender(&mut app.messaging, &mut changer, &mut contacts, &name).await;
}

/// Two replicas on one PostgreSQL: one sends, the other changes the contact.
#[tokio::test]
async fn replicas_route_on_each_others_changes() {
    let mut sender = TestApp::spawn(Backend::Postgres).await;
    let mut changer = sender.replica().await;
    let name = create(
        &mut changer,
        "Anna",
        vec![whatsapp("4915123456789"), email("anna@example.com")],
    )
    .await
    .name;
    changer
        .customer_writes("whatsapp", "+4915123456789", "Hello")
        .await;
    changes_reach_the_sender(
        &mut sender.messaging,
        &mut changer.preferences,
        &mut changer.contacts,
        &name,
    )
    .await;
}

type Messaging = pb::messaging_service_client::MessagingServiceClient<tonic::transport::Channel>;
type Preferences =
    pb::preference_service_client::PreferenceServiceClient<tonic::transport::Channel>;
type Contacts = pb::contact_service_client::ContactServiceClient<tonic::transport::Channel>;

async fn send(messaging: &mut Messaging, name: &str) -> Result<pb::Message, tonic::Status> {
    messaging
        .send_message(text_to(name, "Your order has shipped"))
        .await
        .map(|r| r.into_inner().message.expect("a message"))
}

async fn prefer(preferences: &mut Preferences, name: &str, order: &[pb::Channel], opt_out: bool) {
    let categories = vec![pb::CategoryPreference {
        category: pb::Category::Transactional as i32,
        status: if opt_out {
            pb::OptStatus::OptedOut
        } else {
            pb::OptStatus::OptedIn
        } as i32,
        channels: vec![],
    }];
    preferences
        .update_preferences(pb::UpdatePreferencesRequest {
            preferences: Some(pb::Preferences {
                name: format!("{name}/preferences"),
                channel_order: order.iter().map(|c| *c as i32).collect(),
                categories,
                ..Default::default()
            }),
            update_mask: mask(&["channel_order", "categories"]),
        })
        .await
        .expect("preferences updated");
}

async fn changes_reach_the_sender(
    messaging: &mut Messaging,
    preferences: &mut Preferences,
    contacts: &mut Contacts,
    name: &str,
) {
    let first = send(messaging, name).await.expect("accepted");
    assert_eq!(
        first.channel,
        pb::Channel::Whatsapp as i32,
        "the default order"
    );

    prefer(preferences, name, &[pb::Channel::Email], false).await;
    let second = send(messaging, name).await.expect("accepted");
    assert_eq!(
        second.channel,
        pb::Channel::Email as i32,
        "routed on the new channel order, not the one read for the first send"
    );

    prefer(preferences, name, &[pb::Channel::Email], true).await;
    let refused = send(messaging, name).await.expect_err("opted out");
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");

    // A refusal is never remembered: opting in again lets the next send go.
    prefer(preferences, name, &[pb::Channel::Whatsapp], false).await;
    let third = send(messaging, name).await.expect("accepted again");
    assert_eq!(third.channel, pb::Channel::Whatsapp as i32);

    contacts
        .delete_contact(pb::DeleteContactRequest {
            name: name.to_owned(),
        })
        .await
        .expect("erased");
    let erased = send(messaging, name).await.expect_err("erased");
    assert_eq!(erased.code(), Code::FailedPrecondition, "{erased:?}");
}
