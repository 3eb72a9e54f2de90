//! The SSE wire: how each frame is spelled. Every logged event is an `id:`
//! line, one `data:` line of JSON and a blank line, with no `event:` field, so
//! `EventSource.onmessage` sees them all. Frames are encoded once and shared.

use bytes::Bytes;
use serde_json::json;

/// Tells the browser how soon to reconnect; written first, so headers flush.
pub fn retry(ms: u64) -> Bytes {
    Bytes::from(format!("retry: {ms}\n\n"))
}

/// A logged event. `data` is JSON from serde_json, which never holds a raw
/// line break, so it always fits on one `data:` line.
pub fn event(id: i64, data: &str) -> Bytes {
    Bytes::from(format!("id: {id}\ndata: {data}{EVENT_END}"))
}

/// What follows an event's data: the end of its line and of the event.
pub const EVENT_END: &str = "\n\n";

/// An ephemeral signal (typing, presence): no id, as it is not in the log.
pub fn signal(data: &str) -> Bytes {
    Bytes::from(format!("data: {data}{EVENT_END}"))
}

/// A heartbeat carries no id, so it never moves a client's resume point.
pub fn heartbeat(unix_ms: i64) -> Bytes {
    Bytes::from(format!(
        "data: {{\"type\":\"heartbeat\",\"timestamp\":{unix_ms}}}\n\n"
    ))
}

/// The resume point cannot be served: start over from a snapshot. Carries the
/// newest id, so the browser's next reconnect does not reset again.
pub fn reset(newest_id: i64, reason: &str) -> Bytes {
    let data = format!(r#"{{"type":"reset","reason":{}}}"#, json!(reason));
    event(newest_id, &data)
}

/// Sent just before a stream ends because the store cannot be read now: come
/// back after `retry_ms` (the `retry:` field tells `EventSource` the same). No id.
pub fn unavailable(retry_ms: u64) -> Bytes {
    Bytes::from(format!(
        "retry: {retry_ms}\ndata: {{\"type\":\"unavailable\",\"retryIn\":{retry_ms}}}\n\n"
    ))
}

/// Sent just before a stream ends because its token expired; no id.
pub fn auth_expired() -> Bytes {
    Bytes::from_static(b"data: {\"type\":\"auth_expired\"}\n\n")
}

/// Reads a `Last-Event-ID`: decimal digits only, within i64.
pub fn parse_event_id(text: &str) -> Option<i64> {
    if text.is_empty() || text.len() > 19 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_spelled_as_clients_expect() {
        assert_eq!(&retry(3000)[..], b"retry: 3000\n\n");
        assert_eq!(&event(7, r#"{"a":1}"#)[..], b"id: 7\ndata: {\"a\":1}\n\n");
        assert_eq!(
            &heartbeat(12)[..],
            b"data: {\"type\":\"heartbeat\",\"timestamp\":12}\n\n"
        );
        assert_eq!(
            &unavailable(4500)[..],
            b"retry: 4500\ndata: {\"type\":\"unavailable\",\"retryIn\":4500}\n\n"
        );
        assert_eq!(
            &reset(9, "expired")[..],
            b"id: 9\ndata: {\"type\":\"reset\",\"reason\":\"expired\"}\n\n"
        );
    }

    #[test]
    fn event_ids_are_decimal_digits_within_i64() {
        assert_eq!(parse_event_id("0"), Some(0));
        assert_eq!(parse_event_id("9223372036854775807"), Some(i64::MAX));
        for bad in [
            "",
            "-1",
            "+1",
            "1.0",
            " 1",
            "abc",
            "9223372036854775808",
            "1e3",
        ] {
            assert_eq!(parse_event_id(bad), None, "{bad}");
        }
    }

    mod properties {
        use super::super::{event, parse_event_id};
        use crate::model::{EventData, Message, MessageId, RoomId, Timestamp, UserId};
        use eventsource_stream::Eventsource;
        use futures::StreamExt;
        use proptest::prelude::*;

        /// Bodies as hostile as text gets: any Unicode, line breaks of every
        /// kind, NUL, and text that looks like SSE fields.
        fn body() -> impl Strategy<Value = String> {
            let tricky = prop::sample::select(vec![
                "\n", "\r", "\r\n", "\0", "data: ", "id: 7", "\n\n", "event: x", ":", "retry: 1",
            ]);
            prop::collection::vec(
                prop_oneof![any::<String>(), tricky.prop_map(str::to_owned)],
                0..8,
            )
            .prop_map(|parts| parts.concat())
        }

        /// Encodes a message event as the relay does, then reads it back with
        /// a real SSE parser: what arrives is what was sent.
        fn round_trip(id: i64, body: &str) -> (String, String) {
            let message = Message {
                id: MessageId::new(),
                room_id: RoomId::from_store("01a21bc8-1175-756f-9e0c-38792acfab03".into()),
                seq: 1,
                author_id: UserId::from_store("alice".into()),
                body: body.to_owned(),
                client_id: None,
                created_at: Timestamp::from_unix_ms(0),
                edited_at: None,
                deleted_at: None,
                deleted_by: None,
                attachments: Vec::new(),
            };
            let data = serde_json::to_string(&EventData::Message { message: &message })
                .expect("a message encodes");
            let frame = event(id, &data);
            let chunks = futures::stream::iter([Ok::<_, std::io::Error>(frame)]);
            let events: Vec<_> = futures::executor::block_on(chunks.eventsource().collect());
            assert_eq!(events.len(), 1, "one frame, one event");
            let parsed = events
                .into_iter()
                .next()
                .expect("one event")
                .expect("parses");
            let json: serde_json::Value = serde_json::from_str(&parsed.data).expect("JSON data");
            let body = json["message"]["body"].as_str().expect("a body").to_owned();
            (parsed.id, body)
        }

        proptest! {
            #[test]
            fn any_body_survives_the_wire_unchanged(id in 0..i64::MAX, text in body()) {
                let (wire_id, wire_body) = round_trip(id, &text);
                prop_assert_eq!(wire_body, text);
                prop_assert_eq!(wire_id, id.to_string());
            }

            #[test]
            fn event_ids_round_trip(id in 0..=i64::MAX) {
                prop_assert_eq!(parse_event_id(&id.to_string()), Some(id));
            }

            #[test]
            fn only_plain_digits_are_event_ids(text in "\\PC*|-?[0-9]{1,25}|[0-9 +_.e-]{1,8}") {
                if let Some(id) = parse_event_id(&text) {
                    prop_assert!(text.bytes().all(|b| b.is_ascii_digit()), "{text:?}");
                    prop_assert_eq!(text.trim_start_matches('0').parse::<i64>().unwrap_or(0), id);
                }
            }
        }
    }
}
