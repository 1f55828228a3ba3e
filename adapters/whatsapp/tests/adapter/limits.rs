//! Client-side rate limits over real HTTP, on Tokio's paused clock (the fake
//! stamps requests with the same virtual clock; nothing here measures wall
//! time).

use std::time::Duration;

use omniroute_channel::{Adapter, ErrorClass};
use omniroute_whatsapp::fake::FakeGraph;
use omniroute_whatsapp::{PAIR_BURST, PAIR_INTERVAL, PAIR_LIMIT_CODE, WhatsAppAdapter};
use tokio::time::Instant;

use crate::*;

#[tokio::test(start_paused = true)]
async fn the_number_limiter_keeps_a_burst_under_the_rate() {
    let fake = FakeGraph::start(TOKEN).await;
    let mut config = config(&fake.base_url());
    config.numbers[0].throughput_per_second = 5;
    let adapter = WhatsAppAdapter::new(config).unwrap();

    let start = Instant::now();
    let mut sends = Vec::new();
    for i in 0..12 {
        let adapter = adapter.clone();
        // Distinct customers: only the number's throughput applies.
        let to = format!("49151234567{i:02}");
        sends.push(tokio::spawn(async move {
            adapter.send(&message_to(&to, text("Hallo"))).await
        }));
    }
    for send in sends {
        send.await.unwrap().expect("accepted");
    }

    let mut per_second = [0usize; 4];
    for request in fake.requests() {
        per_second[(request.at - start).as_secs() as usize] += 1;
    }
    assert_eq!(per_second, [5, 5, 2, 0], "sends per virtual second");
}

#[tokio::test(start_paused = true)]
async fn the_pair_limiter_answers_rate_limited_instead_of_waiting() {
    let (fake, adapter) = setup().await;
    for _ in 0..PAIR_BURST {
        adapter.send(&message(text("Hallo"))).await.unwrap();
    }
    let before = Instant::now();
    let e = adapter.send(&message(text("Noch eins"))).await.unwrap_err();
    assert_eq!(Instant::now(), before, "no waiting for the pair limit");
    assert_eq!(e.class(), ErrorClass::RateLimited);
    assert_eq!(e.code(), PAIR_LIMIT_CODE);
    let wait = e.retry_after().unwrap();
    assert!(wait > Duration::ZERO && wait <= PAIR_INTERVAL, "{wait:?}");
    assert_eq!(fake.sent().len(), PAIR_BURST as usize, "nothing sent");

    // Other customers are not held up.
    adapter
        .send(&message_to("4915100000001", text("Hallo")))
        .await
        .unwrap();
    // After the delay it asked for, the customer can be messaged again.
    tokio::time::advance(wait).await;
    adapter.send(&message(text("Noch eins"))).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn both_forms_of_a_wa_id_share_one_pair_limit() {
    // 5215512345678 (old Mexican form) and 525512345678 are one person.
    let (_fake, adapter) = setup().await;
    for i in 0..PAIR_BURST {
        let to = if i % 2 == 0 {
            "5215512345678"
        } else {
            "525512345678"
        };
        adapter.send(&message_to(to, text("Hola"))).await.unwrap();
    }
    let e = adapter
        .send(&message_to("525512345678", text("Hola")))
        .await
        .unwrap_err();
    assert_eq!(e.code(), PAIR_LIMIT_CODE);
}
