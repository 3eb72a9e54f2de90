//! How a batch of posts is planned once its rooms are locked, before
//! anything is written: which posts get an error of their own, which are
//! retries answered with their original, the seq each new message takes,
//! and what the messages do to their rooms' conversations (a customer's
//! opens one again and starts a wait, an agent's ends it). A pure
//! function of what the batch read, so it is tested alone.

use super::{NewMessage, Posted, Upload, attachment_unavailable, closed_room, resend};
use crate::error::{Error, Result};
use crate::model::{Caller, Conversation, Message, MessageId, RoomId, Timestamp, UserId};
use std::collections::{BTreeMap, HashMap, HashSet};

/// One post of a batch, as its caller asked.
pub(super) struct Asked<'a> {
    pub caller: &'a Caller,
    pub room: &'a RoomId,
    pub message: &'a NewMessage,
}

/// What the batch read under its locks.
pub(super) struct Found {
    /// Each open room's newest seq.
    pub open: HashMap<String, i64>,
    /// The closed rooms (a deleted one is neither).
    pub closed: HashSet<String>,
    /// (room, user) for the posters who are members of their post's room.
    pub members: HashSet<(String, String)>,
    /// The stored messages a post's `clientId` reuses, by (room, author, clientId).
    pub earlier: HashMap<(String, String, String), Message>,
    /// Each room's conversation, by room id.
    pub conversations: HashMap<String, Conversation>,
    /// The uploads the posts would send, by id (locked, after the rooms).
    pub uploads: HashMap<String, Upload>,
}

/// Every post's outcome but the new messages' (theirs comes once the batch
/// has committed), and the new messages with the index of their post.
pub(super) struct Plan {
    pub outcomes: Vec<Option<Result<Posted>>>,
    pub created: Vec<(usize, Message)>,
    /// The conversations of the rooms that got messages, as they leave.
    pub conversations: BTreeMap<RoomId, Conversation>,
    /// The conversations a customer's new message opens again, in room id
    /// order, each with the customer whose message was the first.
    pub reopened: BTreeMap<RoomId, UserId>,
    /// How long customers waited for their conversations' first
    /// responses, which this batch's agent messages are (ms).
    pub first_responses: Vec<i64>,
}

/// In arrival order: each room's seqs rise with it (and so, as they are
/// logged in this order, its event ids). A `clientId` used again, in an
/// earlier batch or earlier in this one, is answered with its original,
/// even once the room is closed.
pub(super) fn plan(posts: &[Asked<'_>], mut found: Found, now: i64) -> Plan {
    let mut outcomes: Vec<Option<Result<Posted>>> = posts.iter().map(|_| None).collect();
    let mut created = Vec::new();
    let mut conversations = BTreeMap::new();
    let mut reopened = BTreeMap::new();
    let mut first_responses = Vec::new();
    for (index, post) in posts.iter().enumerate() {
        let (room, author) = (post.room.as_str(), post.caller.id.as_str());
        let visible = post.caller.is_admin()
            || found
                .members
                .contains(&(room.to_owned(), author.to_owned()));
        let exists = found.open.contains_key(room) || found.closed.contains(room);
        if !(visible && exists) {
            outcomes[index] = Some(Err(Error::NotFound("room")));
            continue;
        }
        let client_id = post.message.client_id.as_ref().map(ToString::to_string);
        let key = client_id
            .as_ref()
            .map(|client_id| (room.to_owned(), author.to_owned(), client_id.clone()));
        if let Some(existing) = key.as_ref().and_then(|key| found.earlier.get(key)) {
            outcomes[index] = Some(resend(existing.clone(), post.message));
            continue;
        }
        let Some(&last_seq) = found.open.get(room) else {
            outcomes[index] = Some(Err(closed_room()));
            continue;
        };
        // Each an upload of the author's into this room, stored, and not
        // sent yet (by an earlier post of the batch either).
        let attachments = post
            .message
            .attachments
            .iter()
            .enumerate()
            .map(|(at, id)| match found.uploads.get(id.as_str()) {
                Some(upload)
                    if upload.stored
                        && upload.message_id.is_none()
                        && upload.room_id == *post.room
                        && upload.uploader_id == post.caller.id
                        && !post.message.attachments[..at].contains(id) =>
                {
                    Ok(upload.attachment.clone())
                }
                _ => Err(attachment_unavailable(id)),
            })
            .collect::<Result<Vec<_>>>();
        let attachments = match attachments {
            Ok(attachments) => attachments,
            Err(error) => {
                outcomes[index] = Some(Err(error));
                continue;
            }
        };
        for attachment in &attachments {
            found.uploads.remove(attachment.id.as_str());
        }
        let seq = last_seq + 1;
        found.open.insert(room.to_owned(), seq);
        let message = Message {
            id: MessageId::new(),
            room_id: post.room.clone(),
            seq,
            author_id: post.caller.id.clone(),
            body: post.message.body.to_string(),
            client_id,
            created_at: Timestamp::from_unix_ms(now),
            edited_at: None,
            deleted_at: None,
            deleted_by: None,
            attachments,
        };
        if let Some(key) = key {
            found.earlier.insert(key, message.clone());
        }
        if let Some(conversation) = found.conversations.get_mut(room) {
            let at = Timestamp::from_unix_ms(now);
            if !post.caller.is_admin() {
                if conversation.customer_wrote(at) {
                    reopened
                        .entry(post.room.clone())
                        .or_insert_with(|| post.caller.id.clone());
                }
            } else if let Some(waited) = conversation.agent_wrote(at) {
                first_responses.push(waited);
            }
            conversations.insert(post.room.clone(), conversation.clone());
        }
        created.push((index, message));
    }
    Plan {
        outcomes,
        created,
        conversations,
        reopened,
        first_responses,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ClientId, ConversationStatus, MessageBody, Role, UserId};

    fn caller(id: &str, role: Role) -> Caller {
        Caller {
            id: UserId::parse(id).unwrap(),
            role,
        }
    }

    fn message(body: &str, client_id: Option<&str>) -> NewMessage {
        NewMessage {
            body: MessageBody::parse(body.to_owned()).unwrap(),
            client_id: client_id.map(|id| ClientId::parse(id.to_owned()).unwrap()),
            attachments: Vec::new(),
        }
    }

    fn found(open: &[(&RoomId, i64)], closed: &[&RoomId], members: &[(&RoomId, &str)]) -> Found {
        Found {
            open: open
                .iter()
                .map(|(room, seq)| (room.as_str().to_owned(), *seq))
                .collect(),
            closed: closed.iter().map(|room| room.as_str().to_owned()).collect(),
            members: members
                .iter()
                .map(|(room, user)| (room.as_str().to_owned(), (*user).to_owned()))
                .collect(),
            earlier: HashMap::new(),
            conversations: open
                .iter()
                .map(|(room, _)| (room.as_str().to_owned(), started(0)))
                .collect(),
            uploads: HashMap::new(),
        }
    }

    /// An open conversation begun at `at` (ms), unassigned.
    fn started(at: i64) -> Conversation {
        Conversation {
            status: ConversationStatus::Open,
            snoozed_until: None,
            resolved_at: None,
            assignee_id: None,
            assigned_at: None,
            started_at: Timestamp::from_unix_ms(at),
            first_response_at: None,
            last_customer_message_at: None,
            waiting_since: None,
        }
    }

    fn seqs(plan: &Plan) -> Vec<(usize, i64)> {
        plan.created.iter().map(|(i, m)| (*i, m.seq)).collect()
    }

    fn code(outcome: &Option<Result<Posted>>) -> &'static str {
        match outcome {
            Some(Err(error)) => error.code(),
            Some(Ok(Posted::Existing(_))) => "existing",
            Some(Ok(Posted::Created(_))) => "created",
            None => "to be written",
        }
    }

    #[test]
    fn posts_take_their_rooms_next_seqs_in_arrival_order() {
        let (a, b) = (RoomId::new(), RoomId::new());
        let ann = caller("ann", Role::User);
        let (one, two, three) = (message("1", None), message("2", None), message("3", None));
        let posts = [
            Asked {
                caller: &ann,
                room: &a,
                message: &one,
            },
            Asked {
                caller: &ann,
                room: &b,
                message: &two,
            },
            Asked {
                caller: &ann,
                room: &a,
                message: &three,
            },
        ];
        let plan = plan(
            &posts,
            found(&[(&a, 7), (&b, 0)], &[], &[(&a, "ann"), (&b, "ann")]),
            0,
        );
        assert_eq!(seqs(&plan), [(0, 8), (1, 1), (2, 9)]);
        assert!(plan.outcomes.iter().all(Option::is_none));
    }

    #[test]
    fn a_stranger_a_missing_room_and_a_closed_room_each_fail_alone() {
        let (mine, closed, missing) = (RoomId::new(), RoomId::new(), RoomId::new());
        let (ann, eve, boss) = (
            caller("ann", Role::User),
            caller("eve", Role::User),
            caller("boss", Role::Admin),
        );
        let hello = message("hello", None);
        let posts = [
            Asked {
                caller: &eve,
                room: &mine,
                message: &hello,
            },
            Asked {
                caller: &ann,
                room: &missing,
                message: &hello,
            },
            Asked {
                caller: &ann,
                room: &closed,
                message: &hello,
            },
            Asked {
                caller: &boss,
                room: &mine,
                message: &hello,
            },
            Asked {
                caller: &ann,
                room: &mine,
                message: &hello,
            },
        ];
        let plan = plan(
            &posts,
            found(
                &[(&mine, 0)],
                &[&closed],
                &[(&mine, "ann"), (&closed, "ann")],
            ),
            0,
        );
        let codes: Vec<&str> = plan.outcomes.iter().map(code).collect();
        assert_eq!(
            codes,
            [
                "room_not_found",
                "room_not_found",
                "room_closed",
                "to be written",
                "to be written"
            ]
        );
        // An admin needs no membership.
        assert_eq!(seqs(&plan), [(3, 1), (4, 2)]);
    }

    #[test]
    fn a_client_id_used_before_or_earlier_in_the_batch_gets_its_original() {
        let room = RoomId::new();
        let ann = caller("ann", Role::User);
        let (first, again) = (message("hi", Some("c-1")), message("hi", Some("c-2")));
        let posts = [
            Asked {
                caller: &ann,
                room: &room,
                message: &first,
            },
            Asked {
                caller: &ann,
                room: &room,
                message: &again,
            },
            Asked {
                caller: &ann,
                room: &room,
                message: &again,
            },
        ];
        let mut seen = found(&[(&room, 3)], &[], &[(&room, "ann")]);
        let original = Message {
            id: MessageId::new(),
            room_id: room.clone(),
            seq: 3,
            author_id: ann.id.clone(),
            body: "hi".to_owned(),
            client_id: Some("c-1".to_owned()),
            created_at: Timestamp::from_unix_ms(0),
            edited_at: None,
            deleted_at: None,
            deleted_by: None,
            attachments: Vec::new(),
        };
        let key = (room.as_str().to_owned(), "ann".to_owned(), "c-1".to_owned());
        seen.earlier.insert(key, original);
        let planned = plan(&posts, seen, 0);
        let codes: Vec<&str> = planned.outcomes.iter().map(code).collect();
        assert_eq!(codes, ["existing", "to be written", "existing"]);
        assert_eq!(seqs(&planned), [(1, 4)]);
        // A retry with another body is a conflict, not a second message.
        let changed = message("something else", Some("c-2"));
        let posts = [
            Asked {
                caller: &ann,
                room: &room,
                message: &again,
            },
            Asked {
                caller: &ann,
                room: &room,
                message: &changed,
            },
        ];
        let planned = plan(&posts, found(&[(&room, 0)], &[], &[(&room, "ann")]), 0);
        let codes: Vec<&str> = planned.outcomes.iter().map(code).collect();
        assert_eq!(codes, ["to be written", "client_id_conflict"]);
    }

    #[test]
    fn a_customers_message_opens_a_conversation_again_and_an_agents_does_not() {
        let (resolved, pending, open) = (RoomId::new(), RoomId::new(), RoomId::new());
        let (alice, bob, agent) = (
            caller("alice", Role::User),
            caller("bob", Role::User),
            caller("agent", Role::Admin),
        );
        let mut found = found(
            &[(&resolved, 0), (&pending, 0), (&open, 0)],
            &[],
            &[(&resolved, "alice"), (&resolved, "bob"), (&open, "alice")],
        );
        let mut set = |room: &RoomId, status| {
            let conversation = found.conversations.get_mut(room.as_str()).unwrap();
            conversation.set_status(status, None, Timestamp::from_unix_ms(1));
        };
        set(&resolved, ConversationStatus::Resolved);
        set(&pending, ConversationStatus::Pending);
        let (hi, answer) = (message("hi", None), message("on it", None));
        let posts = [
            Asked {
                caller: &agent,
                room: &pending,
                message: &answer,
            },
            Asked {
                caller: &alice,
                room: &resolved,
                message: &hi,
            },
            Asked {
                caller: &bob,
                room: &resolved,
                message: &hi,
            },
            Asked {
                caller: &alice,
                room: &open,
                message: &hi,
            },
        ];
        let plan = plan(&posts, found, 5);
        assert_eq!(plan.created.len(), 4);
        // Once, by the first customer; the agent's message opens nothing,
        // nor does a message in an open conversation.
        let reopened: Vec<_> = plan.reopened.iter().collect();
        assert_eq!(reopened, [(&resolved, &alice.id)]);
        let status = |room: &RoomId| plan.conversations[room].status;
        assert_eq!(status(&resolved), ConversationStatus::Open);
        assert_eq!(status(&pending), ConversationStatus::Pending);
        // Reopened from `resolved`: a new conversation, begun now, whose
        // customer waits since their message.
        let reopened = &plan.conversations[&resolved];
        assert_eq!(reopened.started_at, Timestamp::from_unix_ms(5));
        assert_eq!(reopened.waiting_since, Some(Timestamp::from_unix_ms(5)));
        assert_eq!(reopened.last_customer_message_at, reopened.waiting_since);
    }

    #[test]
    fn an_agents_first_reply_ends_the_wait_and_is_measured_once() {
        let room = RoomId::new();
        let (alice, agent) = (caller("alice", Role::User), caller("agent", Role::Admin));
        let (question, answer) = (message("?", None), message("!", None));
        let asked = |caller| Asked {
            caller,
            room: &room,
            message: &question,
        };
        let answered = |caller| Asked {
            caller,
            room: &room,
            message: &answer,
        };
        // The agent greets first: no customer waits, nothing is measured.
        let mut found = found(&[(&room, 0)], &[], &[(&room, "alice")]);
        let greeting = plan(&[answered(&agent)], found, 10);
        assert!(greeting.first_responses.is_empty());
        found = self::found(&[(&room, 1)], &[], &[(&room, "alice")]);
        found.conversations.insert(
            room.as_str().to_owned(),
            greeting.conversations[&room].clone(),
        );
        // The customer asks twice and waits since the first; the reply ends the wait.
        let asked_twice = plan(&[asked(&alice), asked(&alice)], found, 100);
        let waiting = &asked_twice.conversations[&room];
        assert_eq!(waiting.waiting_since, Some(Timestamp::from_unix_ms(100)));
        let mut found = self::found(&[(&room, 3)], &[], &[(&room, "alice")]);
        found
            .conversations
            .insert(room.as_str().to_owned(), waiting.clone());
        let replied = plan(
            &[answered(&agent), asked(&alice), answered(&agent)],
            found,
            160,
        );
        assert_eq!(replied.first_responses, [60]);
        let after = &replied.conversations[&room];
        assert_eq!(after.first_response_at, Some(Timestamp::from_unix_ms(160)));
        assert_eq!(after.waiting_since, None);
        assert_eq!(
            after.last_customer_message_at,
            Some(Timestamp::from_unix_ms(160))
        );
    }
}
