//! Rooms full of messages, seeded through the HTTP API as fast as it takes
//! them (many concurrent posts), then settled as a database that size would
//! be: W4's and W11's.

use crate::target::Target;
use futures::StreamExt;
use serde_json::json;
use sqlx::Connection;
use std::time::Instant;

/// Concurrent writers while seeding messages.
const SEEDERS: usize = 256;

/// `rooms` rooms, the `i`th with `members(i)`, and `messages` messages
/// spread evenly over them (message `n` in room `n % rooms`, with
/// `body(n)`), posted concurrently by the target's publisher; on PostgreSQL
/// then vacuumed and analysed. Returns the messages stored a second.
pub async fn rooms_with_messages(
    target: &Target,
    rooms: usize,
    messages: usize,
    members: impl Fn(usize) -> Vec<String>,
    body: impl Fn(usize) -> String,
) -> Result<f64, String> {
    let started = Instant::now();
    let ids = target.create_rooms(rooms, members).await?;
    let urls: Vec<String> = ids.iter().map(|id| target.messages_url(id)).collect();
    println!(
        "seeding: {rooms} rooms created in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let started = Instant::now();
    let posts = (0..messages).map(|n| {
        let request = target
            .http
            .post(&urls[n % urls.len()])
            .bearer_auth(&target.publisher)
            .json(&json!({"body": body(n)}));
        async move {
            let answer = request.send().await.map_err(|e| e.to_string())?;
            if answer.status().is_success() {
                Ok(())
            } else {
                Err(format!("seeding: a post got {}", answer.status()))
            }
        }
    });
    let mut posts = futures::stream::iter(posts).buffer_unordered(SEEDERS);
    let mut done = 0usize;
    while let Some(outcome) = posts.next().await {
        outcome?;
        done += 1;
        if done.is_multiple_of(100_000) {
            println!(
                "seeding: {done} messages, {:.0}/s",
                done as f64 / started.elapsed().as_secs_f64()
            );
        }
    }
    let messages_per_s = messages as f64 / started.elapsed().as_secs_f64();
    println!(
        "seeding: {messages} messages in {:.1} s ({messages_per_s:.0}/s)",
        started.elapsed().as_secs_f64(),
    );
    // What autovacuum would have done long ago on a database this size;
    // left to run during the measurement, it would be measured too.
    if target.served.database.starts_with("postgres") {
        let mut db = sqlx::PgConnection::connect(&target.served.database)
            .await
            .map_err(|e| e.to_string())?;
        sqlx::query("VACUUM ANALYZE")
            .execute(&mut db)
            .await
            .map_err(|e| e.to_string())?;
        println!("seeding: vacuumed and analysed");
    }
    Ok(messages_per_s)
}
