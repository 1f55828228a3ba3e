//! Events as JSON: the proto's canonical JSON form of `omniroute.v1.Event`
//! (proto3 JSON mapping: lowerCamelCase names, enums by name, 64-bit
//! integers and timestamps as strings, default values left out), for
//! webhook deliveries. Rendered from the same proto message the event
//! stream sends, through the API's own descriptors, so the two never
//! differ.

use std::sync::LazyLock;

use omniroute_domain::Event;
use prost::Message as _;
use prost_reflect::{DescriptorPool, DynamicMessage, MessageDescriptor};

use super::message_convert::event_to_pb;

static EVENT: LazyLock<MessageDescriptor> = LazyLock::new(|| {
    DescriptorPool::decode(omniroute_proto::FILE_DESCRIPTOR_SET)
        .ok()
        .and_then(|pool| pool.get_message_by_name("omniroute.v1.Event"))
        .unwrap_or_else(|| unreachable!("the build embeds omniroute.v1.Event's descriptor"))
});

/// The event in canonical JSON.
pub fn event_json(event: &Event) -> Vec<u8> {
    let bytes = event_to_pb(event).encode_to_vec();
    let mut out = Vec::with_capacity(bytes.len() * 2);
    let rendered = DynamicMessage::decode(EVENT.clone(), bytes.as_slice())
        .map_err(|e| e.to_string())
        .and_then(|message| {
            let mut json = serde_json::Serializer::new(&mut out);
            serde::Serialize::serialize(&message, &mut json).map_err(|e| e.to_string())
        });
    if let Err(error) = rendered {
        // Both sides come from one descriptor: this cannot happen.
        unreachable!("an event does not render as JSON: {error}");
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::{Duration, SystemTime};

    use omniroute_domain::{Cursor, EventPayload, EventType};
    use uuid::Uuid;

    use super::*;

    #[test]
    fn events_render_in_the_proto_json_mapping() {
        let endpoint = Uuid::nil();
        let event = Event {
            cursor: Cursor { xid: 7, seq: 42 },
            kind: EventType::EndpointDisabled,
            time: SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            contact_id: None,
            message_id: None,
            correlation_ref: "order-1".to_owned(),
            metadata: BTreeMap::from([("shop".to_owned(), "berlin".to_owned())]),
            payload: EventPayload::Endpoint {
                endpoint_id: endpoint,
                reason: "the endpoint answered 410 Gone".to_owned(),
            },
            route: None,
        };
        let json: serde_json::Value = serde_json::from_slice(&event_json(&event)).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "cursor": Cursor { xid: 7, seq: 42 }.encode(),
                "type": "EVENT_TYPE_ENDPOINT_DISABLED",
                "time": "2023-11-14T22:13:20Z",
                "correlationRef": "order-1",
                "metadata": {"shop": "berlin"},
                "endpointNotice": {
                    "endpoint": format!("endpoints/{endpoint}"),
                    "reason": "the endpoint answered 410 Gone",
                },
            })
        );
    }
}
