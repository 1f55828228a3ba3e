//! The voice adapter against the fake Twilio API: the call it places, how
//! Twilio's errors are classed, and what its callbacks say.

use omniroute_channel::content::Text;
use omniroute_channel::{
    Adapter, Address, Category, Channel, Content, DeliveryStatus, ErrorClass, OutboundMessage,
    PhoneRegion, WebhookEvent, WebhookRequest,
};
use omniroute_voice::fake::FakeTwilio;
use omniroute_voice::twilio::{callbacks, signature};

mod support;

fn message(body: &str) -> OutboundMessage {
    OutboundMessage {
        tenant: "acme".into(),
        message_id: "01a232b1-1186-710f-972d-02f288bc6632".into(),
        to: Address::parse(Channel::Voice, "+49 151 12345678", PhoneRegion::default()).unwrap(),
        category: Category::Transactional,
        content: Content::Text(Text {
            body: body.into(),
            ..Text::default()
        }),
        reply_to: None,
        attempt: 1,
        window_open_until: None,
        locale: None,
        trace_parent: String::new(),
    }
}

#[tokio::test]
async fn placing_a_call_carries_the_trace_context_it_is_given() {
    let fake = FakeTwilio::start(support::ACCOUNT, support::TOKEN).await;
    let adapter = support::adapter(&fake);
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let traced = OutboundMessage {
        trace_parent: traceparent.into(),
        ..message("Your table is ready")
    };
    adapter.send(&traced).await.expect("placed");
    adapter.send(&message("Untraced")).await.expect("placed");
    let calls = fake.calls();
    assert_eq!(calls[0].traceparent.as_deref(), Some(traceparent));
    assert_eq!(
        calls[1].traceparent, None,
        "no trace, no traceparent header"
    );
}

#[tokio::test]
async fn a_notification_call_speaks_the_text_and_gathers_a_digit() {
    let fake = FakeTwilio::start(support::ACCOUNT, support::TOKEN).await;
    let adapter = support::adapter(&fake);
    let receipt = adapter
        .send(&message("Your table for 2 is ready <now> & waiting"))
        .await
        .expect("placed");
    let calls = fake.calls();
    assert_eq!(calls.len(), 1);
    let call = &calls[0];
    assert_eq!(receipt.provider_message_id, call.sid);
    assert!(
        call.sid.starts_with("CA") && call.sid.len() == 34,
        "{}",
        call.sid
    );
    assert_eq!(
        (call.to.as_str(), call.from.as_str()),
        ("+4915112345678", "+4930123456")
    );
    assert_eq!(
        call.status_callback,
        "https://router.acme.example/webhooks/voice"
    );
    assert_eq!(call.events, ["ringing", "answered", "completed"]);
    assert!(
        call.twiml.contains(
            "<Say language=\"de-DE\" loop=\"2\">Your table for 2 is ready &lt;now&gt; &amp; waiting</Say>"
        ),
        "{}",
        call.twiml
    );
    assert!(
        call.twiml
            .contains("<Gather input=\"dtmf\" numDigits=\"1\"")
            && call.twiml.contains(
                "action=\"https://router.acme.example/webhooks/voice?leg=gather\
                 &amp;message=01a232b1-1186-710f-972d-02f288bc6632&amp;line=%2B4930123456\""
            ),
        "{}",
        call.twiml
    );
    // The API answers its state.
    assert_eq!(
        adapter.fetch_status(&call.sid).await.unwrap(),
        None,
        "queued: nothing yet"
    );
}

#[tokio::test]
async fn a_script_longer_than_twilio_takes_inline_is_fetched_when_answered() {
    let fake = FakeTwilio::start(support::ACCOUNT, support::TOKEN).await;
    let adapter = support::adapter(&fake);
    // Escaped, 990 ampersands are 4,950 characters of TwiML.
    let long = format!("Q&A: {}", "&".repeat(990));
    adapter.send(&message(&long)).await.expect("placed");
    adapter.send(&message("Short")).await.expect("placed");
    let calls = fake.calls();
    assert!(calls[0].twiml.is_empty(), "{}", calls[0].twiml);
    assert_eq!(
        calls[0].url,
        "https://router.acme.example/webhooks/voice?leg=script\
         &message=01a232b1-1186-710f-972d-02f288bc6632&line=%2B4930123456&lang=de-DE&gather=1"
    );
    assert!(calls[1].url.is_empty() && calls[1].twiml.contains("Short"));
    // Asked when answered, the router plays the message it names.
    let query = query_of(&calls[0].url);
    let body = format!(
        "AccountSid={}&CallSid={}&CallStatus=in-progress&Direction=outbound-api\
         &From=%2B4930123456&To=%2B4915112345678",
        support::ACCOUNT,
        calls[0].sid
    );
    let request = request_to(&calls[0].url, &query, body.as_bytes());
    assert_eq!(
        adapter.answer_reads(&request),
        Some((
            "+4930123456".to_owned(),
            "01a232b1-1186-710f-972d-02f288bc6632".to_owned()
        ))
    );
    let asked = omniroute_channel::AskedMessage {
        content: message(&long).content,
        pending: true,
        provider_id: Some(calls[0].sid.clone()),
    };
    let (kind, twiml) = adapter.webhook_answer(&request, Some(&asked));
    assert_eq!(kind, "text/xml");
    assert!(
        twiml.contains(&format!(
            "<Say language=\"de-DE\" loop=\"2\">Q&amp;A: {}</Say>",
            "&amp;".repeat(990)
        )) && twiml.contains(
            "action=\"https://router.acme.example/webhooks/voice?leg=gather\
             &amp;message=01a232b1-1186-710f-972d-02f288bc6632&amp;line=%2B4930123456\""
        ),
        "{twiml}"
    );
    // A message the router does not have: the call hangs up.
    let (_, twiml) = adapter.webhook_answer(&request, None);
    assert!(
        twiml.contains("<Hangup/>") && !twiml.contains("<Say"),
        "{twiml}"
    );
}

#[tokio::test]
async fn twilio_errors_are_classed() {
    let fake = FakeTwilio::start(support::ACCOUNT, support::TOKEN).await;
    let adapter = support::adapter(&fake);
    let cases = [
        (400, 21211, ErrorClass::Permanent),
        (401, 20003, ErrorClass::Configuration),
        (400, 21210, ErrorClass::Configuration),
        (429, 20429, ErrorClass::RateLimited),
        (503, 20500, ErrorClass::Transient),
    ];
    for (status, code, class) in cases {
        fake.fail_next(1, status, code, "scripted");
        let error = adapter.send(&message("hello")).await.unwrap_err();
        assert_eq!(error.class(), class, "{status} {code}: {error}");
        assert_eq!(error.code(), code.to_string());
    }
    let limited = {
        fake.fail_next(1, 429, 20429, "slow down");
        adapter.send(&message("hello")).await.unwrap_err()
    };
    assert_eq!(
        limited.retry_after(),
        Some(std::time::Duration::from_secs(2))
    );
    // Wrong credentials are the fake's 401 too.
    let wrong = omniroute_voice::VoiceAdapter::new(omniroute_voice::VoiceConfig {
        auth_token: "wrong".into(),
        ..support::config(&fake)
    })
    .unwrap();
    let error = wrong.send(&message("hello")).await.unwrap_err();
    assert_eq!(error.class(), ErrorClass::Configuration);
    assert_eq!(fake.calls().len(), 0, "nothing was placed");
}

fn signed<'a>(uri: &'a str, headers: &'a [(String, String)], body: &'a [u8]) -> WebhookRequest<'a> {
    WebhookRequest {
        uri,
        query: &[],
        headers,
        body,
    }
}

#[tokio::test]
async fn callbacks_say_what_became_of_the_call() {
    let fake = FakeTwilio::start(support::ACCOUNT, support::TOKEN).await;
    let adapter = support::adapter(&fake);
    let sid = adapter
        .send(&message("hello"))
        .await
        .unwrap()
        .provider_message_id;
    let call = fake.calls()[0].clone();
    let status = |end: &str| {
        let params = fake.status_params(&call, end, 2);
        omniroute_voice::twilio::form_body(&params).into_bytes()
    };
    // A call ends once: its end without an answer is a failure only while
    // the message has no outcome (`Ended`).
    for (end, want, class) in [
        ("completed", DeliveryStatus::Delivered, None),
        ("busy", DeliveryStatus::Ended, Some(ErrorClass::Transient)),
        (
            "no-answer",
            DeliveryStatus::Ended,
            Some(ErrorClass::Transient),
        ),
        ("failed", DeliveryStatus::Ended, Some(ErrorClass::Permanent)),
        (
            "canceled",
            DeliveryStatus::Ended,
            Some(ErrorClass::Permanent),
        ),
    ] {
        let body = status(end);
        let headers = vec![(
            signature::HEADER.to_owned(),
            signature::sign(
                support::TOKEN,
                "https://router.acme.example/webhooks/voice",
                &callbacks::form(&body),
            ),
        )];
        adapter
            .verify_signature(&signed("/webhooks/voice", &headers, &body))
            .expect("signed for the public URL");
        assert!(
            adapter
                .verify_signature(&signed("/webhooks/voice?x=1", &headers, &body))
                .is_err(),
            "another URL"
        );
        match adapter.parse_webhook(&body).unwrap().as_slice() {
            [WebhookEvent::Status(update)] => {
                assert_eq!(update.provider_message_id, sid);
                assert_eq!(update.status, want, "{end}");
                assert_eq!(update.error.as_ref().map(|e| e.class()), class, "{end}");
            }
            other => panic!("{end}: {other:?}"),
        }
    }
    // On the way: nothing to record.
    assert!(matches!(
        adapter
            .parse_webhook(&status("ringing"))
            .unwrap()
            .as_slice(),
        [WebhookEvent::Ignored(_)]
    ));
    // A pressed digit answers the message the call carried, posted to the
    // call's gather action, which names the message.
    let gather = call
        .twiml
        .split("action=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .map(|a| a.replace("&amp;", "&"))
        .expect("the call gathers");
    let query = query_of(&gather);
    let digits = format!(
        "AccountSid={}&CallSid={sid}&Digits=1&Direction=outbound-api&From=%2B4930123456&To=%2B4915112345678",
        support::ACCOUNT
    );
    let request = request_to(&gather, &query, digits.as_bytes());
    assert_eq!(
        adapter.answer_reads(&request),
        Some((
            "+4930123456".to_owned(),
            "01a232b1-1186-710f-972d-02f288bc6632".to_owned()
        ))
    );
    let asked = |provider_id: Option<&str>| omniroute_channel::AskedMessage {
        content: message("hello").content,
        pending: true,
        provider_id: provider_id.map(str::to_owned),
    };
    for ours in [asked(Some(&sid)), asked(None)] {
        match adapter
            .parse_request(&request, Some(&ours))
            .unwrap()
            .as_slice()
        {
            [WebhookEvent::Inbound(m)] => {
                assert_eq!(m.account, "+4930123456");
                assert_eq!(m.from.value(), "+4915112345678");
                assert_eq!(m.reply_to.as_deref(), Some(sid.as_str()));
                assert!(matches!(&m.content, Content::ChoiceReply(c) if c.id == "1"));
            }
            other => panic!("{other:?}"),
        }
    }
    // Digits of another call, for no message the router has, or outside a
    // gather of ours are none of ours.
    let elsewhere = asked(Some("CA00000000000000000000000000000099"));
    for events in [
        adapter.parse_request(&request, Some(&elsewhere)).unwrap(),
        adapter.parse_request(&request, None).unwrap(),
        adapter.parse_webhook(digits.as_bytes()).unwrap(),
    ] {
        assert!(
            matches!(events.as_slice(), [WebhookEvent::Ignored(_)]),
            "{events:?}"
        );
    }
    let answer = adapter.webhook_answer(&request, None);
    assert_eq!(answer.0, "text/xml");
    assert!(answer.1.contains("<Hangup/>"), "{}", answer.1);
}

#[tokio::test]
async fn requests_of_another_account_or_no_call_of_twilio_are_refused() {
    let fake = FakeTwilio::start(support::ACCOUNT, support::TOKEN).await;
    let adapter = support::adapter(&fake);
    let signed_for = |body: &str| {
        vec![(
            signature::HEADER.to_owned(),
            signature::sign(
                support::TOKEN,
                "https://router.acme.example/webhooks/voice",
                &callbacks::form(body.as_bytes()),
            ),
        )]
    };
    // Signed with our token, but naming another account, or none.
    for body in [
        "AccountSid=AC00000000000000000000000000000002&CallSid=CA00000000000000000000000000000042&CallStatus=ringing&Direction=inbound&From=%2B4915112345678&To=%2B4930123456",
        "CallSid=CA00000000000000000000000000000042&CallStatus=ringing&Direction=inbound&From=%2B4915112345678&To=%2B4930123456",
    ] {
        let headers = signed_for(body);
        assert!(
            adapter
                .verify_signature(&signed("/webhooks/voice", &headers, body.as_bytes()))
                .is_err(),
            "{body}"
        );
    }
    // A sid Twilio never gives; a call coming in from nobody.
    let long = format!(
        "AccountSid={}&CallSid=CA{}&CallStatus=completed&Direction=outbound-api",
        support::ACCOUNT,
        "0".repeat(4998)
    );
    let anonymous = format!(
        "AccountSid={}&CallSid=CA00000000000000000000000000000042&CallStatus=ringing&Direction=inbound&To=%2B4930123456",
        support::ACCOUNT
    );
    for body in [long, anonymous] {
        let headers = signed_for(&body);
        let request = signed("/webhooks/voice", &headers, body.as_bytes());
        adapter.verify_signature(&request).expect("signed");
        assert!(adapter.parse_request(&request, None).is_err(), "{body}");
    }
}

/// A request to `url` (under the public base) with `body`, its query
/// decoded as the router's listener decodes it.
fn request_to<'a>(
    url: &'a str,
    query: &'a [(String, String)],
    body: &'a [u8],
) -> WebhookRequest<'a> {
    WebhookRequest {
        uri: url.strip_prefix(support::PUBLIC).unwrap_or(url),
        query,
        headers: &[],
        body,
    }
}

fn query_of(url: &str) -> Vec<(String, String)> {
    callbacks::form(url.split_once('?').map_or("", |(_, q)| q).as_bytes())
}

#[tokio::test]
async fn a_callback_asks_what_to_do_bridges_a_person_and_hangs_up_on_a_machine() {
    use omniroute_channel::content::CallbackRequest;
    let fake = FakeTwilio::start(support::ACCOUNT, support::TOKEN).await;
    let adapter = support::adapter(&fake);
    let mut outbound = message("");
    outbound.content = Content::CallbackRequest(CallbackRequest {
        agent_address: "+4930555000111".into(),
        greeting: "Hello, this is Acme & Co calling back".into(),
        language: "en-GB".into(),
        reason: String::new(),
    });
    let receipt = adapter.send(&outbound).await.expect("placed");
    let call = fake.calls().pop().expect("a call");
    assert_eq!(call.sid, receipt.provider_message_id);
    assert!(call.twiml.is_empty(), "asked of the router, not inline");
    assert_eq!(call.machine_detection.as_deref(), Some("Enable"));
    assert_eq!(
        call.status_callback,
        "https://router.acme.example/webhooks/voice?leg=callback"
    );
    let answer_query = query_of(&call.url);
    assert!(
        call.url
            .starts_with("https://router.acme.example/webhooks/voice?leg=answer&")
    );
    let form = |extra: &str| {
        format!(
            "AccountSid={}&CallSid={}&CallStatus=in-progress&Direction=outbound-api&From=%2B4930123456&To=%2B4915112345678{extra}",
            support::ACCOUNT,
            call.sid
        )
        .into_bytes()
    };

    // A person answers: recorded, then greeted and bridged to the agent.
    let human = form("&AnsweredBy=human");
    let request = request_to(&call.url, &answer_query, &human);
    match adapter.parse_request(&request, None).unwrap().as_slice() {
        [WebhookEvent::CallProgress(p)] => {
            assert_eq!(
                (p.call_id.as_str(), p.answered_by.as_deref()),
                (call.sid.as_str(), Some("human"))
            );
        }
        other => panic!("{other:?}"),
    }
    // The answer URL names the callback: the router reads it, and
    // bridges only while it still waits for its outcome.
    assert_eq!(
        adapter.answer_reads(&request),
        Some((
            "+4930123456".to_owned(),
            "01a232b1-1186-710f-972d-02f288bc6632".to_owned()
        ))
    );
    let waiting = omniroute_channel::AskedMessage {
        content: outbound.content.clone(),
        pending: true,
        provider_id: Some(call.sid.clone()),
    };
    let (kind, twiml) = adapter.webhook_answer(&request, Some(&waiting));
    assert_eq!(kind, "text/xml");
    assert!(
        twiml.contains("<Say language=\"en-GB\">Hello, this is Acme &amp; Co calling back</Say>"),
        "{twiml}"
    );
    // Canceled meanwhile, or not the router's: hung up, not bridged.
    let canceled = omniroute_channel::AskedMessage {
        pending: false,
        ..waiting.clone()
    };
    for asked in [Some(&canceled), None] {
        let twiml = adapter.webhook_answer(&request, asked).1;
        assert!(
            !twiml.contains("<Dial") && twiml.contains("<Hangup/>"),
            "{twiml}"
        );
    }
    assert!(twiml.contains("<Dial callerId=\"+4930123456\" timeout=\"30\" action=\"https://router.acme.example/webhooks/voice?leg=dial\" method=\"POST\"><Number>+4930555000111</Number></Dial>"), "{twiml}");

    // A machine: recorded, not reached (tried again), hung up.
    let machine = form("&AnsweredBy=machine_start");
    let request = request_to(&call.url, &answer_query, &machine);
    match adapter.parse_request(&request, None).unwrap().as_slice() {
        [WebhookEvent::CallProgress(p), WebhookEvent::Status(s)] => {
            assert_eq!(p.answered_by.as_deref(), Some("machine_start"));
            assert_eq!(s.status, DeliveryStatus::Failed);
            assert_eq!(
                s.error.as_ref().map(|e| (e.class(), e.code())),
                Some((ErrorClass::Transient, "call-machine"))
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(
        !adapter
            .webhook_answer(&request, Some(&waiting))
            .1
            .contains("<Dial")
    );

    // The dial's outcome: connected is delivered; a busy agent a transient failure.
    let dial_query = vec![("leg".to_owned(), "dial".to_owned())];
    let connected = form("&DialCallStatus=completed&DialCallDuration=95&DialCallSid=CA9");
    match adapter
        .parse_request(
            &request_to("/webhooks/voice?leg=dial", &dial_query, &connected),
            None,
        )
        .unwrap()
        .as_slice()
    {
        [WebhookEvent::CallProgress(p), WebhookEvent::Status(s)] => {
            assert_eq!(p.bridged_seconds, Some(95));
            assert_eq!(s.status, DeliveryStatus::Delivered);
        }
        other => panic!("{other:?}"),
    }
    let busy = form("&DialCallStatus=busy&DialCallSid=CA9");
    match adapter
        .parse_request(
            &request_to("/webhooks/voice?leg=dial", &dial_query, &busy),
            None,
        )
        .unwrap()
        .as_slice()
    {
        [WebhookEvent::Status(s)] => {
            assert_eq!(s.status, DeliveryStatus::Failed);
            assert_eq!(
                s.error.as_ref().map(|e| (e.class(), e.code())),
                Some((ErrorClass::Transient, "agent-busy"))
            );
        }
        other => panic!("{other:?}"),
    }

    // The call's end counts only when the bridge did not deliver it; a
    // failed callback call is tried again.
    let leg = vec![("leg".to_owned(), "callback".to_owned())];
    for (end, want) in [
        ("completed", DeliveryStatus::Ended),
        ("failed", DeliveryStatus::Ended),
        ("no-answer", DeliveryStatus::Ended),
    ] {
        let body = format!(
            "AccountSid={}&CallSid={}&CallStatus={end}&Direction=outbound-api&SequenceNumber=4",
            support::ACCOUNT,
            call.sid
        )
        .into_bytes();
        match adapter
            .parse_request(
                &request_to("/webhooks/voice?leg=callback", &leg, &body),
                None,
            )
            .unwrap()
            .as_slice()
        {
            [WebhookEvent::Status(s)] => {
                assert_eq!(s.status, want, "{end}");
                assert_eq!(
                    s.error.as_ref().map(|e| e.class()),
                    Some(ErrorClass::Transient),
                    "{end}"
                );
            }
            other => panic!("{end}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_call_coming_in_is_the_customers_message_put_through_or_missed() {
    let fake = FakeTwilio::start(support::ACCOUNT, support::TOKEN).await;
    let incoming = format!(
        "AccountSid={}&CallSid=CA00000000000000000000000000000042&CallStatus=ringing&Called=%2B4930123456&Caller=%2B4915112345678&Direction=inbound&From=%2B4915112345678&To=%2B4930123456",
        support::ACCOUNT
    )
    .into_bytes();
    let request = signed("/webhooks/voice", &[], &incoming);
    // Nobody takes the number's calls: recorded, and missed at once.
    let adapter = support::adapter(&fake);
    match adapter.parse_request(&request, None).unwrap().as_slice() {
        [WebhookEvent::Inbound(m), WebhookEvent::MissedCall(missed)] => {
            assert_eq!(m.account, "+4930123456");
            assert_eq!(m.from.value(), "+4915112345678");
            assert_eq!(m.provider_message_id, "CA00000000000000000000000000000042");
            assert!(
                matches!(&m.content, Content::InboundCall(c) if c.line == "+4930123456"),
                "{:?}",
                m.content
            );
            assert_eq!(missed.account, "+4930123456");
            assert_eq!(missed.from.value(), "+4915112345678");
        }
        other => panic!("{other:?}"),
    }
    assert!(
        adapter
            .webhook_answer(&request, None)
            .1
            .ends_with("<Response><Hangup/></Response>")
    );
    // With a line to put calls through to: greeted, dialled with the
    // caller's number shown; only a dial nobody took is missed.
    let mut config = support::config(&fake);
    config.numbers[0].forward_to = Some("+4930555000222".into());
    config.numbers[0].greeting = "Welcome to Acme".into();
    let adapter = omniroute_voice::VoiceAdapter::new(config).unwrap();
    assert!(matches!(
        adapter.parse_request(&request, None).unwrap().as_slice(),
        [WebhookEvent::Inbound(_)]
    ));
    let twiml = adapter.webhook_answer(&request, None).1;
    assert!(
        twiml.contains(
            "<Say language=\"de-DE\">Welcome to Acme</Say><Dial callerId=\"+4915112345678\""
        ),
        "{twiml}"
    );
    assert!(
        twiml.contains("action=\"https://router.acme.example/webhooks/voice?leg=incoming-dial\""),
        "{twiml}"
    );
    let leg = vec![("leg".to_owned(), "incoming-dial".to_owned())];
    for (outcome, missed) in [("completed", false), ("busy", true), ("no-answer", true)] {
        let body = format!(
            "AccountSid={}&CallSid=CA00000000000000000000000000000042&CallStatus=in-progress&DialCallStatus={outcome}&Direction=inbound&From=%2B4915112345678&To=%2B4930123456",
            support::ACCOUNT
        )
        .into_bytes();
        let events = adapter
            .parse_request(
                &request_to("/webhooks/voice?leg=incoming-dial", &leg, &body),
                None,
            )
            .unwrap();
        assert_eq!(
            matches!(events.as_slice(), [WebhookEvent::MissedCall(m)] if m.from.value() == "+4915112345678"),
            missed,
            "{outcome}: {events:?}"
        );
    }
}

#[tokio::test]
async fn a_call_is_canceled_while_it_rings_and_hung_up_once_answered() {
    use omniroute_voice::provider::End;
    let fake = FakeTwilio::start(support::ACCOUNT, support::TOKEN).await;
    let adapter = support::adapter(&fake);
    let ringing = adapter.send(&message("Ihr Termin")).await.unwrap();
    adapter
        .end_call(&ringing.provider_message_id, End::Cancel)
        .await
        .expect("canceled");
    assert_eq!(fake.calls()[0].status, "canceled");
    // A call that ended cannot end again: Twilio refuses (21220).
    let again = adapter
        .end_call(&ringing.provider_message_id, End::HangUp)
        .await
        .unwrap_err();
    assert!(again.code().contains("21220"), "{again:?}");
    // Hung up (Twilio takes `completed` for a call in progress or not yet
    // answered).
    let answered = adapter.send(&message("Ihr Termin")).await.unwrap();
    adapter
        .end_call(&answered.provider_message_id, End::HangUp)
        .await
        .expect("hung up");
    assert_eq!(fake.calls()[1].status, "completed");
    // An unknown call is Twilio's 404.
    assert!(adapter.end_call("CA404", End::Cancel).await.is_err());
}
