//! `SearchStore` on either database, each with its own engine: PostgreSQL
//! matches the generated `tsvector` column through its GIN index, SQLite
//! the FTS5 table over `messages`. One query either way, composed of the
//! filters a request has, in two levels: the inner finds, checks and orders
//! the page's messages; the outer makes a snippet of those alone (a
//! snippet re-reads its body, which no engine should do for every match).

use super::SqlStore;
use super::dialect::Dialect;
use super::queries::MESSAGE_COLUMNS;
use crate::error::Result;
use crate::model::Caller;
use crate::store::search::{
    MATCH_START, MATCH_STOP, SearchCursor, SearchHit, SearchOrder, SearchPage, SearchRequest,
    SearchStore, snippet_parts,
};
use crate::store::{Backend, MessageRow, page_of};
use sqlx::{ColumnIndex, Decode, Encode, Executor, Type};

/// How many of the newest matches a search by relevance ranks: ranking
/// reads every match's words, which for a common word is most of the
/// table (docs/scaling.md). Older ones are reached with words that are
/// rarer, a room, or a time range.
const RANKED: i64 = 100;
/// How many of the newest messages an admin's search reads for each match
/// it wants before it turns to the full-text index (see `newest_matches`):
/// it turns only for words in fewer than one message in this many, whose
/// matches are then few (a 200th of the messages at most).
const WINDOW_PER_MATCH: i64 = 200;
/// The most words a snippet shows around its matches.
const SNIPPET_WORDS: u32 = 24;
/// PostgreSQL's stand-ins for `<` and `>` while it makes a snippet: its
/// parser would take a tag out of the text (private-use characters, put
/// back in `headline`).
const PG_LT: char = '\u{E000}';
const PG_GT: char = '\u{E001}';

/// A page's order, of the columns of `table` (a prefix: `h.` or none).
fn order_by(backend: Backend, order: SearchOrder, table: &str) -> String {
    let newest = match backend {
        Backend::Postgres => format!("{table}position DESC, {table}id DESC"),
        Backend::Sqlite => format!("{table}position DESC"),
    };
    match order {
        SearchOrder::Newest => newest,
        SearchOrder::Relevance => format!("{table}score DESC, {newest}"),
    }
}

#[derive(sqlx::FromRow)]
struct HitRow {
    #[sqlx(flatten)]
    message: MessageRow,
    room_name: String,
    position: i64,
    /// The newest position the ranked window holds (relevance).
    top: i64,
    snippet: String,
}

/// A value a search statement binds.
#[derive(Debug, Clone, PartialEq)]
pub enum SearchArgument {
    Text(String),
    Number(i64),
}

/// A search's statement: its SQL (`$n` parameters, as both databases take
/// them) and what to bind.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchStatement {
    pub sql: String,
    pub arguments: Vec<SearchArgument>,
}

impl SearchStatement {
    /// Appends `sql`.
    fn push(&mut self, sql: &str) -> &mut Self {
        self.sql.push_str(sql);
        self
    }

    /// Appends a parameter bound to `argument`.
    fn bind(&mut self, argument: SearchArgument) -> &mut Self {
        let parameter = self.param(argument);
        self.sql.push_str(&parameter);
        self
    }

    /// Binds `argument` to a parameter of its own, written where it is
    /// used (`$n`, which may be used more than once).
    fn param(&mut self, argument: SearchArgument) -> String {
        self.arguments.push(argument);
        format!("${}", self.arguments.len())
    }

    fn text(&mut self, text: &str) -> &mut Self {
        self.bind(SearchArgument::Text(text.to_owned()))
    }
}

/// The statement that runs `request` for `caller` on `backend`, whose words
/// are read as the text search configuration `language` does (PostgreSQL).
pub fn search_statement(
    backend: Backend,
    language: &str,
    caller: &Caller,
    request: &SearchRequest,
) -> SearchStatement {
    let mut query = SearchStatement {
        sql: String::new(),
        arguments: Vec::new(),
    };
    match backend {
        Backend::Postgres => postgres(&mut query, language, caller, request),
        Backend::Sqlite => fts5(&mut query, caller, request),
    }
    query
}

/// PostgreSQL: the matches newest first (see `newest_matches`), each page
/// of them, or the best of the newest `RANKED` by `ts_rank`; then a snippet
/// of each hit of the page (`ts_headline`, which re-reads the body).
fn postgres(query: &mut SearchStatement, language: &str, caller: &Caller, request: &SearchRequest) {
    // `$1`, used wherever the language is.
    query
        .arguments
        .push(SearchArgument::Text(language.to_owned()));
    query.push("WITH q AS (SELECT ");
    let (text, prefix) = request.text.websearch();
    if !text.is_empty() {
        query
            .push("websearch_to_tsquery(CAST($1 AS regconfig), ")
            .text(&text)
            .push(")");
    }
    if let Some(prefix) = prefix {
        if !text.is_empty() {
            query.push(" && ");
        }
        query
            .push("to_tsquery(CAST($1 AS regconfig), ")
            .text(&prefix)
            .push(")");
    }
    query.push(" AS query), ");
    let hits = match request.order {
        SearchOrder::Newest => {
            let page = page_size(request);
            newest_matches(query, caller, request, page, request.after.as_ref(), None);
            query.push(" ");
            "SELECT *, CAST(0 AS double precision) AS score, position AS top FROM matches"
                .to_owned()
        }
        SearchOrder::Relevance => {
            // The window of the first page stays: later pages rank the
            // same newest matches, whatever came since.
            let top = request.after.as_ref().and_then(|cursor| cursor.top);
            newest_matches(query, caller, request, RANKED, None, top);
            query.push(
                ", ranked AS MATERIALIZED (SELECT matches.*,
                     CAST(ts_rank(matches.search, q.query) AS double precision) AS score,
                     MAX(matches.position) OVER () AS top
                 FROM matches, q) ",
            );
            let mut ranked = "SELECT * FROM ranked".to_owned();
            if let Some(cursor) = &request.after {
                // After the last hit as it ranks now (scores stay out of
                // cursors: see `SearchCursor`).
                let position = query.param(SearchArgument::Number(cursor.position));
                let id = query.param(SearchArgument::Text(cursor.id.clone()));
                ranked.push_str(&format!(
                    " WHERE (score, position, id) <
                         ((SELECT a.score FROM ranked a WHERE a.id = {id}), {position}, {id})"
                ));
            }
            ranked
        }
    };
    query.push(&format!(
        "SELECT {columns}, r.name AS room_name, h.position, h.top,
             ts_headline(CAST($1 AS regconfig),
                 translate(h.body, E'<>\\x01\\x02', E'\\u{lt:04X}\\u{gt:04X}'), q.query,
                 'StartSel=' || chr(1) || ', StopSel=' || chr(2)
                 || ', MaxWords={SNIPPET_WORDS}, MinWords={min}') AS snippet
         FROM ({hits} ORDER BY {order} LIMIT ",
        columns = columns("h"),
        lt = PG_LT as u32,
        gt = PG_GT as u32,
        min = SNIPPET_WORDS / 2,
        order = order_by(Backend::Postgres, request.order, ""),
    ));
    query
        .bind(SearchArgument::Number(page_size(request)))
        .push(") AS h JOIN rooms r ON r.id = h.room_id CROSS JOIN q");
    query.push(&format!(
        " ORDER BY {}",
        order_by(Backend::Postgres, request.order, "h.")
    ));
}

/// Adds the CTE `matches`: the first `limit` matches after `after` (and
/// at or before `top`), newest first, with their `search` vectors and
/// `position` (time).
///
/// Two ways to them, for the two kinds of words. A rare word's matches
/// come from the full-text index, bounded by how many there are. A common
/// word's are among the newest messages: an admin's search (every room)
/// first reads the newest `WINDOW` messages by time, and only when they
/// hold fewer than `limit` matches goes to the index; PostgreSQL skips
/// that part unread (a one-time filter). Through the index alone, a word
/// in half the messages read half the table before its first page.
fn newest_matches(
    query: &mut SearchStatement,
    caller: &Caller,
    request: &SearchRequest,
    limit: i64,
    after: Option<&SearchCursor>,
    top: Option<i64>,
) {
    let columns = format!("{}, m.search, m.created_at AS position", columns("m"));
    let window = limit * WINDOW_PER_MATCH;
    let limit_parameter = query.param(SearchArgument::Number(limit));
    let top = top.map(|top| query.param(SearchArgument::Number(top)));
    let bounds = |query: &mut SearchStatement| {
        if let Some(cursor) = after {
            query.push(" AND ");
            newest_after(query, Backend::Postgres, cursor);
        }
        if let Some(top) = &top {
            query.push(&format!(" AND m.created_at <= {top}"));
        }
    };
    let by_index = |query: &mut SearchStatement| {
        query.push(&format!(
            "SELECT {columns} FROM messages m, q WHERE m.search @@ q.query"
        ));
        filters(query, caller, request);
        bounds(query);
        // `+ 0`: through the full-text index, whatever PostgreSQL guesses
        // of a prefix's matches (it cannot estimate them, and guessing many
        // it walked every message by time to find a rare word).
        query.push(&format!(
            " ORDER BY m.created_at + 0 DESC, m.id DESC LIMIT {limit_parameter}"
        ));
    };
    if caller.is_admin() && request.room.is_none() {
        query.push(&format!(
            "recent AS MATERIALIZED (SELECT {columns}
             FROM (SELECT * FROM messages m WHERE m.deleted_at IS NULL"
        ));
        time_filters(query, request);
        bounds(query);
        query.push(&format!(
            " ORDER BY m.created_at DESC, m.id DESC LIMIT {window}) AS m, q
             WHERE m.search @@ q.query"
        ));
        filters(query, caller, request);
        query.push(&format!(
            " ORDER BY m.created_at DESC, m.id DESC LIMIT {limit_parameter}),
             matches AS (SELECT * FROM recent
                 WHERE (SELECT COUNT(*) FROM recent) >= {limit_parameter}
             UNION ALL (SELECT * FROM ("
        ));
        by_index(query);
        query.push(&format!(
            ") AS indexed WHERE (SELECT COUNT(*) FROM recent) < {limit_parameter}))"
        ));
    } else {
        query.push("matches AS (");
        by_index(query);
        query.push(")");
    }
}

/// SQLite: FTS5 walks its matches newest first (by rowid, the order of
/// insertion) without sorting, so a page stops as soon as it is full; by
/// relevance, the best of the newest `RANKED` by `bm25`, which FTS5
/// computes only as a result column (elsewhere it is silently wrong): so
/// in the CTE `s`, whose rows the keyset then reads. Then a snippet of
/// each hit of the page.
fn fts5(query: &mut SearchStatement, caller: &Caller, request: &SearchRequest) {
    // `$1`, used wherever the match is.
    query
        .arguments
        .push(SearchArgument::Text(request.text.fts5()));
    let matches = |query: &mut SearchStatement,
                   score: &str,
                   after: Option<&SearchCursor>,
                   top: Option<i64>,
                   limit: i64| {
        query.push(&format!(
            "SELECT {}, messages_search.rowid AS position, {score} AS score
             FROM messages_search JOIN messages m ON m.rowid = messages_search.rowid
             WHERE messages_search MATCH $1",
            columns("m")
        ));
        filters(query, caller, request);
        if let Some(cursor) = after {
            query.push(" AND ");
            newest_after(query, Backend::Sqlite, cursor);
        }
        if let Some(top) = top {
            query
                .push(" AND messages_search.rowid <= ")
                .bind(SearchArgument::Number(top));
        }
        query
            .push(" ORDER BY messages_search.rowid DESC LIMIT ")
            .bind(SearchArgument::Number(limit));
    };
    let outer = format!(
        "SELECT {}, r.name AS room_name, h.position, h.top,
             snippet(messages_search, 0, char(1), char(2), '…', {SNIPPET_WORDS}) AS snippet
         FROM (",
        columns("h")
    );
    match request.order {
        SearchOrder::Newest => {
            query.push(&outer).push("SELECT *, position AS top FROM (");
            matches(
                query,
                "0.0",
                request.after.as_ref(),
                None,
                page_size(request),
            );
            query.push(")");
        }
        SearchOrder::Relevance => {
            // The window of the first page stays (see `postgres`).
            let top = request.after.as_ref().and_then(|cursor| cursor.top);
            query.push("WITH s AS MATERIALIZED (");
            matches(query, "-bm25(messages_search)", None, top, RANKED);
            query
                .push(") ")
                .push(&outer)
                .push("SELECT *, (SELECT MAX(position) FROM s) AS top FROM s");
            if let Some(cursor) = &request.after {
                // After the last hit as it ranks now (scores stay out of
                // cursors: see `SearchCursor`).
                let position = query.param(SearchArgument::Number(cursor.position));
                query.push(&format!(
                    " WHERE (score, position) <
                         ((SELECT a.score FROM s a WHERE a.position = {position}), {position})"
                ));
            }
            query
                .push(&format!(
                    " ORDER BY {} LIMIT ",
                    order_by(Backend::Sqlite, request.order, "")
                ))
                .bind(SearchArgument::Number(page_size(request)));
        }
    }
    // For the snippet: each hit's FTS5 row, matched again.
    query.push(&format!(
        ") AS h JOIN rooms r ON r.id = h.room_id
         JOIN messages_search ON messages_search.rowid = h.position
             AND messages_search MATCH $1
         ORDER BY {}",
        order_by(Backend::Sqlite, request.order, "h.")
    ));
}

/// What the room's history shows the caller, and no tombstone; the
/// request's filters. (A deleted room's messages go in batches after it.)
fn filters(query: &mut SearchStatement, caller: &Caller, request: &SearchRequest) {
    query.push(
        " AND m.deleted_at IS NULL AND NOT EXISTS (SELECT 1 FROM rooms d
              WHERE d.id = m.room_id AND d.deleted_at IS NOT NULL)",
    );
    if !caller.is_admin() {
        query
            .push(" AND m.room_id IN (SELECT room_id FROM room_members WHERE user_id = ")
            .text(caller.id.as_str())
            .push(")");
    }
    if let Some(room) = &request.room {
        query.push(" AND m.room_id = ").text(room.as_str());
    }
    if let Some(author) = &request.author {
        query.push(" AND m.author_id = ").text(author.as_str());
    }
    time_filters(query, request);
}

fn time_filters(query: &mut SearchStatement, request: &SearchRequest) {
    if let Some(since) = request.since {
        query
            .push(" AND m.created_at >= ")
            .bind(SearchArgument::Number(since.unix_ms()));
    }
    if let Some(until) = request.until {
        query
            .push(" AND m.created_at < ")
            .bind(SearchArgument::Number(until.unix_ms()));
    }
}

/// After `cursor` in the newest-first order: by time on PostgreSQL (then
/// id, as times may tie), by rowid on SQLite.
fn newest_after(query: &mut SearchStatement, backend: Backend, cursor: &SearchCursor) {
    match backend {
        // A row comparison: a range of `messages_by_time`.
        Backend::Postgres => {
            query
                .push("(m.created_at, m.id) < (")
                .bind(SearchArgument::Number(cursor.position))
                .push(", ")
                .text(&cursor.id)
                .push(")");
        }
        Backend::Sqlite => {
            query
                .push("messages_search.rowid < ")
                .bind(SearchArgument::Number(cursor.position));
        }
    }
}

/// A page's rows: one more than it shows, to tell whether more follow.
fn page_size(request: &SearchRequest) -> i64 {
    i64::from(request.limit) + 1
}

/// `MESSAGE_COLUMNS` of `table`.
fn columns(table: &str) -> String {
    MESSAGE_COLUMNS
        .split(',')
        .map(|column| format!("{table}.{}", column.trim()))
        .collect::<Vec<_>>()
        .join(", ")
}

#[async_trait::async_trait]
impl<D: Dialect> SearchStore for SqlStore<D>
where
    for<'c> &'c mut D::Connection: Executor<'c, Database = D>,
    usize: ColumnIndex<D::Row>,
    for<'n> &'n str: ColumnIndex<D::Row>,
    for<'q> &'q str: Encode<'q, D> + Type<D>,
    for<'r> String: Encode<'r, D> + Decode<'r, D> + Type<D>,
    for<'r> i64: Encode<'r, D> + Decode<'r, D> + Type<D>,
    for<'r> Option<i64>: Encode<'r, D>,
    for<'r> bool: Encode<'r, D> + Decode<'r, D> + Type<D>,
{
    async fn search(&self, caller: &Caller, request: &SearchRequest) -> Result<SearchPage> {
        let statement = search_statement(D::BACKEND, &self.search_language, caller, request);
        let mut query = sqlx::query_as::<D, HitRow>(sqlx::AssertSqlSafe(statement.sql));
        for argument in statement.arguments {
            query = match argument {
                SearchArgument::Text(text) => query.bind(text),
                SearchArgument::Number(number) => query.bind(number),
            };
        }
        let mut tx = self.pool.begin_with(D::BEGIN_SEARCH).await?;
        let rows = query.fetch_all(&mut *tx).await?;
        tx.commit().await?;
        let (rows, has_more) = page_of(rows, request.limit);
        let next = match has_more {
            true => rows.last().map(|row| SearchCursor {
                position: row.position,
                id: row.message.id.clone(),
                top: (request.order == SearchOrder::Relevance).then_some(row.top),
            }),
            false => None,
        };
        let hits = rows
            .into_iter()
            .map(|row| {
                let snippet = match D::BACKEND {
                    Backend::Postgres => headline(&row.message.body, &row.snippet),
                    Backend::Sqlite => row.snippet,
                };
                SearchHit {
                    room_name: row.room_name,
                    snippet: snippet_parts(&snippet),
                    message: row.message.into(),
                }
            })
            .collect();
        Ok(SearchPage { hits, next })
    }
}

/// PostgreSQL's headline of `body` as FTS5's snippet would be: the tags'
/// brackets put back, and `…` where it cut the body short.
fn headline(body: &str, marked: &str) -> String {
    let text: String = marked
        .chars()
        .map(|c| match c {
            PG_LT => '<',
            PG_GT => '>',
            c => c,
        })
        .collect();
    let plain: String = text
        .chars()
        .filter(|c| *c != MATCH_START && *c != MATCH_STOP)
        .collect();
    let plain = plain.trim();
    let (start, end) = match body.find(plain) {
        Some(at) if !plain.is_empty() => (
            body[..at].trim().is_empty(),
            body[at + plain.len()..].trim().is_empty(),
        ),
        _ => (true, true),
    };
    let mut snippet = String::new();
    if !start {
        snippet.push('…');
    }
    snippet.push_str(text.trim());
    if !end {
        snippet.push('…');
    }
    snippet
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_headline_shows_where_it_cut_the_body_and_its_tags_as_written() {
        let body = "first words, then <b>refund</b> and more words after";
        let marked = "then \u{E000}b\u{E001}\u{1}refund\u{2}\u{E000}/b\u{E001} and";
        assert_eq!(headline(body, marked), "…then <b>\u{1}refund\u{2}</b> and…");
        assert_eq!(headline("refund", "\u{1}refund\u{2}"), "\u{1}refund\u{2}");
    }
}
