//! What an endpoint is made of, checked: its URL (see `address`), the
//! event types it wants and the rooms it is about; and which of the log's
//! events it gets, under which type names.

use super::address;
use crate::error::{Error, Result};
use crate::store::Webhook;
use serde::Deserialize;

/// The notice raised for a member who neither read a message nor was
/// online within the delay (see `unseen`).
pub use crate::store::UNSEEN;

/// Every event type an endpoint may ask for.
pub const EVENT_TYPES: [&str; 13] = [
    "message.created",
    "message.edited",
    "message.deleted",
    "room.created",
    "room.member_added",
    "room.member_removed",
    "room.closed",
    "room.reopened",
    "room.deleted",
    "room.read",
    "conversation.status_changed",
    "conversation.assigned",
    UNSEEN,
];

/// The longest URL kept.
const MAX_URL: usize = 2048;
/// The most rooms one endpoint may name.
const MAX_ROOMS: usize = 1000;
/// How many endpoints may exist: each has a task and a lease.
pub const MAX_WEBHOOKS: usize = 100;

/// Where endpoints may point.
#[derive(Debug, Clone, Copy)]
pub struct UrlRules {
    /// Plain `http` refused (production).
    pub https_only: bool,
    /// Loopback, private and link-local addresses allowed.
    pub allow_internal: bool,
}

/// A URL an endpoint may have, or a 422 saying why not.
pub fn check_url(text: &str, rules: UrlRules) -> Result<String> {
    let invalid = |why: String| Error::unprocessable("invalid_webhook_url", why);
    if text.len() > MAX_URL {
        return Err(invalid(format!("url is longer than {MAX_URL} bytes")));
    }
    let url = url::Url::parse(text).map_err(|e| invalid(format!("url is not a URL: {e}")))?;
    match url.scheme() {
        "https" => {}
        "http" if !rules.https_only => {}
        "http" => return Err(invalid("url must be https in production".to_owned())),
        other => return Err(invalid(format!("url must be http or https, not {other}"))),
    }
    let Some(host) = url.host() else {
        return Err(invalid("url has no host".to_owned()));
    };
    if !rules.allow_internal
        && let Some(why) = address::refusal(&host)
    {
        return Err(invalid(format!(
            "url may not point at internal services: {why} \
             (webhook_allow_internal_addresses allows it)"
        )));
    }
    Ok(url.into())
}

/// The event types asked for, each known, each once.
pub fn check_event_types(types: &[String]) -> Result<Vec<String>> {
    if types.is_empty() {
        return Err(Error::unprocessable(
            "invalid_event_types",
            "eventTypes must name at least one event type",
        ));
    }
    let mut checked: Vec<String> = Vec::with_capacity(types.len());
    for kind in types {
        if !EVENT_TYPES.contains(&kind.as_str()) {
            return Err(Error::unprocessable(
                "invalid_event_types",
                format!(
                    "`{kind}` is not an event type; they are: {}",
                    EVENT_TYPES.join(", ")
                ),
            ));
        }
        if !checked.contains(kind) {
            checked.push(kind.clone());
        }
    }
    Ok(checked)
}

/// The rooms named, each once; `None` (every room) stays `None`.
pub fn check_room_ids(rooms: Option<&[String]>) -> Result<Option<Vec<String>>> {
    let Some(rooms) = rooms else { return Ok(None) };
    if rooms.is_empty() || rooms.len() > MAX_ROOMS {
        return Err(Error::unprocessable(
            "invalid_room_ids",
            format!("roomIds must name 1 to {MAX_ROOMS} rooms, or be left out for every room"),
        ));
    }
    let mut checked: Vec<String> = Vec::with_capacity(rooms.len());
    for room in rooms {
        if room.is_empty() || room.len() > 100 {
            return Err(Error::unprocessable(
                "invalid_room_ids",
                "a room id is 1 to 100 characters",
            ));
        }
        if !checked.contains(room) {
            checked.push(room.clone());
        }
    }
    Ok(Some(checked))
}

/// The webhook type of a logged event (its JSON as the log keeps it), if
/// it has one.
pub fn event_type(data: &str) -> Option<&'static str> {
    #[derive(Deserialize)]
    struct Kind<'a> {
        #[serde(rename = "type", borrow)]
        kind: &'a str,
        #[serde(default, borrow)]
        change: Option<&'a str>,
    }
    let Kind { kind, change } = serde_json::from_str(data).ok()?;
    Some(match (kind, change) {
        ("message", _) => "message.created",
        ("message_edited", _) => "message.edited",
        ("message_deleted", _) => "message.deleted",
        ("read", _) => "room.read",
        ("room", Some("created")) => "room.created",
        ("room", Some("member_added")) => "room.member_added",
        ("room", Some("member_removed")) => "room.member_removed",
        ("room", Some("closed")) => "room.closed",
        ("room", Some("reopened")) => "room.reopened",
        ("room", Some("deleted")) => "room.deleted",
        ("conversation_updated", Some("assignee")) => "conversation.assigned",
        ("conversation_updated", _) => "conversation.status_changed",
        _ => return None,
    })
}

/// Whether `hook` wants events of `kind` in `room`.
pub fn wants(hook: &Webhook, kind: &str, room: &str) -> bool {
    hook.event_types.iter().any(|wanted| wanted == kind)
        && hook
            .room_ids
            .as_ref()
            .is_none_or(|rooms| rooms.iter().any(|wanted| wanted == room))
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPEN: UrlRules = UrlRules {
        https_only: false,
        allow_internal: false,
    };

    #[test]
    fn urls_must_be_http_to_a_public_host() {
        assert!(check_url("https://hooks.example.com/chat", OPEN).is_ok());
        assert!(check_url("http://hooks.example.com/chat", OPEN).is_ok());
        let production = UrlRules {
            https_only: true,
            ..OPEN
        };
        assert!(check_url("http://hooks.example.com/chat", production).is_err());
        for refused in [
            "ftp://hooks.example.com/",
            "not a url",
            "http://127.0.0.1:8080/",
            "http://localhost/",
            "http://169.254.169.254/latest/meta-data",
            "http://[::1]/",
            "http://10.0.0.5/",
            "http://0x7f000001/",
        ] {
            assert!(check_url(refused, OPEN).is_err(), "{refused}");
        }
        let internal = UrlRules {
            allow_internal: true,
            ..OPEN
        };
        assert!(check_url("http://127.0.0.1:8080/", internal).is_ok());
    }

    #[test]
    fn logged_events_get_their_webhook_types() {
        assert_eq!(
            event_type(r#"{"type":"message","message":{}}"#),
            Some("message.created")
        );
        assert_eq!(
            event_type(r#"{"type":"room","room":{},"change":"member_removed","userId":"a"}"#),
            Some("room.member_removed")
        );
        assert_eq!(
            event_type(r#"{"type":"read","roomId":"r"}"#),
            Some("room.read")
        );
        assert_eq!(
            event_type(r#"{"type":"conversation_updated","roomId":"r","change":"status"}"#),
            Some("conversation.status_changed")
        );
        assert_eq!(
            event_type(r#"{"type":"conversation_updated","roomId":"r","change":"assignee"}"#),
            Some("conversation.assigned")
        );
        assert_eq!(event_type(r#"{"type":"presence"}"#), None);
        assert!(check_event_types(&["message.created".into(), "nope".into()]).is_err());
        assert_eq!(
            check_event_types(&["room.read".into(), "room.read".into()]).unwrap(),
            ["room.read"]
        );
    }
}
