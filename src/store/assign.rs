//! How auto-assignment gives out the conversations it has locked, to the
//! agents whose rows it has locked: a pure function of what it read, so it
//! is tested alone. The queue is served oldest wait first; each goes to the
//! agent with the fewest open conversations below the cap, of those the
//! one who got one longest ago; one whose customer has waited too long for
//! its assignee goes to another agent, or back to the queue if that one is
//! no longer online.

use crate::model::{Conversation, ConversationStatus, RoomId, Timestamp, UserId};

/// An online agent, as the transaction found them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct AgentLoad {
    pub id: UserId,
    /// Open conversations assigned to them.
    pub open: i64,
    pub last_assigned_at: Option<i64>,
}

/// What the rules say of `rooms` (in queue order: oldest wait first):
/// the conversations whose assignee changes, as they will be. `loads`
/// follow the changes (and tell whom to note as assigned at `now`).
pub(super) fn plan(
    rooms: Vec<(RoomId, Conversation)>,
    loads: &mut [AgentLoad],
    cap: i64,
    reassign_before: Option<Timestamp>,
    now: Timestamp,
) -> Vec<(RoomId, Conversation)> {
    let mut changed = Vec::new();
    for (room, mut conversation) in rooms {
        let Some(waiting_since) = conversation.waiting_since else {
            continue;
        };
        if conversation.status != ConversationStatus::Open {
            continue;
        }
        let stale = |at: Option<Timestamp>| {
            reassign_before.is_some_and(|before| at.is_none_or(|at| at < before))
        };
        let leaving = match &conversation.assignee_id {
            None => None,
            Some(agent) if stale(Some(waiting_since)) && stale(conversation.assigned_at) => {
                Some(agent.clone())
            }
            Some(_) => continue,
        };
        let next = loads
            .iter_mut()
            .filter(|load| load.open < cap && Some(&load.id) != leaving.as_ref())
            .min_by(|a, b| {
                (a.open, a.last_assigned_at, &a.id).cmp(&(b.open, b.last_assigned_at, &b.id))
            });
        let next = match next {
            Some(load) => {
                load.open += 1;
                load.last_assigned_at = Some(now.unix_ms());
                Some(load.id.clone())
            }
            // Nobody else free: it stays with an agent still online (back in
            // the queue it would come back to them), and goes back to the
            // queue from one who is not.
            None => match &leaving {
                Some(agent) if loads.iter().any(|load| &load.id == agent) => continue,
                Some(_) => None,
                // Nobody free: it waits in the queue.
                None => continue,
            },
        };
        if let Some(leaving) = &leaving
            && let Some(load) = loads.iter_mut().find(|load| &load.id == leaving)
        {
            load.open -= 1;
        }
        conversation.assign(next, now);
        changed.push((room, conversation));
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent(id: &str, open: i64, last_assigned_at: Option<i64>) -> AgentLoad {
        AgentLoad {
            id: UserId::parse(id).unwrap(),
            open,
            last_assigned_at,
        }
    }

    fn waiting(since: i64, assignee: Option<(&str, i64)>) -> (RoomId, Conversation) {
        let at = Timestamp::from_unix_ms;
        let conversation = Conversation {
            status: ConversationStatus::Open,
            snoozed_until: None,
            resolved_at: None,
            assignee_id: assignee.map(|(id, _)| UserId::parse(id).unwrap()),
            assigned_at: assignee.map(|(_, when)| at(when)),
            started_at: at(0),
            first_response_at: None,
            last_customer_message_at: Some(at(since)),
            waiting_since: Some(at(since)),
        };
        (RoomId::new(), conversation)
    }

    fn assignees(planned: &[(RoomId, Conversation)]) -> Vec<Option<&str>> {
        planned
            .iter()
            .map(|(_, conversation)| conversation.assignee_id.as_ref().map(UserId::as_str))
            .collect()
    }

    #[test]
    fn the_queue_goes_to_the_least_loaded_agents_in_turn_and_never_past_the_cap() {
        let mut loads = [
            agent("ann", 1, Some(5)),
            agent("bo", 0, None),
            agent("cy", 1, Some(3)),
        ];
        let queue = (0..6).map(|n| waiting(n, None)).collect();
        let planned = plan(queue, &mut loads, 2, None, Timestamp::from_unix_ms(100));
        // bo (0 open); then cy and ann at 1, cy first (longer ago); then bo
        // again at 1 (ann and cy are at the cap of 2); the rest wait.
        assert_eq!(
            assignees(&planned),
            [Some("bo"), Some("cy"), Some("ann"), Some("bo")]
        );
        assert!(loads.iter().all(|load| load.open == 2));
    }

    #[test]
    fn a_customer_waiting_too_long_for_their_agent_goes_to_another_or_back_to_the_queue() {
        let before = Some(Timestamp::from_unix_ms(1_000));
        let mut loads = [agent("ann", 2, Some(1)), agent("bo", 0, Some(2))];
        let rooms = vec![
            // Waited since 10 for ann, who has had it since 20: to bo.
            waiting(10, Some(("ann", 20))),
            // ann got it only at 1,500: not yet.
            waiting(10, Some(("ann", 1_500))),
            // The customer wrote at 2,000: not yet.
            waiting(2_000, Some(("ann", 20))),
        ];
        let planned = plan(rooms, &mut loads, 5, before, Timestamp::from_unix_ms(3_000));
        assert_eq!(assignees(&planned), [Some("bo")]);
        assert_eq!((loads[0].open, loads[1].open), (1, 1));
        // With nobody else free, it stays with her while she is online...
        let mut alone = [agent("ann", 1, None)];
        let kept = || vec![waiting(10, Some(("ann", 20)))];
        let at = Timestamp::from_unix_ms(3_000);
        assert!(plan(kept(), &mut alone, 5, before, at).is_empty());
        // ...and goes back to the queue once she is not.
        let planned = plan(kept(), &mut [], 5, before, at);
        assert_eq!(assignees(&planned), [None]);
        assert_eq!(planned[0].1.assigned_at, None);
    }
}
