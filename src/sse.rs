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
    Bytes::from(format!("id: {id}\ndata: {data}\n\n"))
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
}
