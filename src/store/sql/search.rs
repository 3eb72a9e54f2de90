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
use crate::store::{MessageRow, page_of};
use sqlx::{ColumnIndex, Decode, Encode, Executor, Type};

/// Which full-text engine a database has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SearchEngine {
    /// `tsvector`, `websearch_to_tsquery`, `ts_rank`, `ts_headline`.
    Postgres,
    /// FTS5: `MATCH`, `bm25`, `snippet`.
    Fts5,
}

/// A match's relevance on PostgreSQL, as a cursor keeps it.
const PG_SCORE: &str = "CAST(ts_rank(m.search, q.query) AS double precision)";
/// The most words a snippet shows around its matches.
const SNIPPET_WORDS: u32 = 24;
/// PostgreSQL's stand-ins for `<` and `>` while it makes a snippet: its
/// parser would take a tag out of the text (private-use characters, put
/// back in `snippet`).
const PG_LT: char = '\u{E000}';
const PG_GT: char = '\u{E001}';

/// A page's order, of the columns of `table` (a prefix: `h.` or none).
fn order_by(engine: SearchEngine, order: SearchOrder, table: &str) -> String {
    let newest = match engine {
        SearchEngine::Postgres => format!("{table}position DESC, {table}id DESC"),
        SearchEngine::Fts5 => format!("{table}position DESC"),
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
    score: f64,
    position: i64,
    snippet: String,
}

/// A value a search statement binds.
#[derive(Debug, Clone, PartialEq)]
pub enum SearchArgument {
    Text(String),
    Number(i64),
    Real(f64),
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
        self.arguments.push(argument);
        self.sql.push_str(&format!("${}", self.arguments.len()));
        self
    }

    fn text(&mut self, text: &str) -> &mut Self {
        self.bind(SearchArgument::Text(text.to_owned()))
    }
}

/// The statement that runs `request` for `caller` on `engine`, whose words
/// are read as the text search configuration `language` does (PostgreSQL).
pub fn search_statement(
    engine: SearchEngine,
    language: &str,
    caller: &Caller,
    request: &SearchRequest,
) -> SearchStatement {
    let columns = |table: &str| {
        MESSAGE_COLUMNS
            .split(',')
            .map(|column| format!("{table}.{}", column.trim()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut query = SearchStatement {
        sql: String::new(),
        arguments: Vec::new(),
    };
    // `$1`: the language on PostgreSQL, the FTS5 query on SQLite.
    let first = match engine {
        SearchEngine::Postgres => language.to_owned(),
        SearchEngine::Fts5 => request.text.fts5(),
    };
    query.arguments.push(SearchArgument::Text(first));
    query.push(&format!(
        "SELECT {}, h.room_name, h.score, h.position, ",
        columns("h")
    ));
    query.push(&match engine {
        SearchEngine::Postgres => format!(
            "ts_headline(CAST($1 AS regconfig),
                 translate(h.body, E'<>\\x01\\x02', E'\\u{:04X}\\u{:04X}'), h.query,
                 'StartSel=' || chr(1) || ', StopSel=' || chr(2)
                 || ', MaxWords={SNIPPET_WORDS}, MinWords={}') AS snippet",
            PG_LT as u32,
            PG_GT as u32,
            SNIPPET_WORDS / 2
        ),
        SearchEngine::Fts5 => format!(
            "snippet(messages_search, 0, char(1), char(2), '…', {SNIPPET_WORDS}) AS snippet"
        ),
    });
    query.push(&format!(
        " FROM (SELECT {}, r.name AS room_name, ",
        columns("m")
    ));
    match engine {
        SearchEngine::Postgres => {
            let (text, prefix) = request.text.websearch();
            // `+ 0`: always through the full-text index, bounded by the
            // matches. PostgreSQL cannot estimate a prefix's matches, and
            // guessing many it walked every message by time to find a rare
            // word (docs/scaling.md).
            query.push(&format!(
                "{PG_SCORE} AS score, m.created_at + 0 AS position, q.query FROM (SELECT "
            ));
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
            query.push(
                " AS query) AS q
                 JOIN messages m ON m.search @@ q.query
                 JOIN rooms r ON r.id = m.room_id
                 WHERE true",
            );
        }
        SearchEngine::Fts5 => {
            // bm25 is lower for a better match. FTS5 computes it only as a
            // result column (elsewhere it is silently wrong), so the keyset
            // reads it from `s`, kept whole by a `LIMIT` (SQLite neither
            // merges such a subquery into a join nor pushes terms into it).
            let (score, whole) = match request.order {
                SearchOrder::Relevance => ("-bm25(messages_search)", " LIMIT -1"),
                SearchOrder::Newest => ("0.0", ""),
            };
            query.push(&format!(
                "s.score, s.position
                 FROM (SELECT rowid AS position, {score} AS score
                       FROM messages_search WHERE messages_search MATCH $1{whole}) AS s
                 JOIN messages m ON m.rowid = s.position
                 JOIN rooms r ON r.id = m.room_id
                 WHERE true"
            ));
        }
    }
    // What the room's history shows the caller, and no tombstone.
    query.push(" AND m.deleted_at IS NULL AND r.deleted_at IS NULL");
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
    if let Some(cursor) = &request.after {
        let (score, position) = match engine {
            SearchEngine::Postgres => (PG_SCORE, "m.created_at"),
            SearchEngine::Fts5 => ("s.score", "s.position"),
        };
        // After the cursor in the newest-first order: by time on
        // PostgreSQL (then id, as times may tie), by rowid on SQLite (the
        // order of insertion, which FTS5 walks backwards without sorting).
        let mut after_newest = SearchStatement {
            sql: String::new(),
            arguments: std::mem::take(&mut query.arguments),
        };
        after_newest
            .push(&format!("({position} < "))
            .bind(SearchArgument::Number(cursor.position));
        if engine == SearchEngine::Postgres {
            after_newest
                .push(&format!(" OR ({position} = "))
                .bind(SearchArgument::Number(cursor.position))
                .push(" AND m.id < ")
                .text(&cursor.id)
                .push(")");
        }
        after_newest.push(")");
        query.arguments = after_newest.arguments;
        query.push(" AND ");
        match request.order {
            SearchOrder::Newest => {
                query.push(&after_newest.sql);
            }
            SearchOrder::Relevance => {
                // Both `$n` of the score are one parameter, bound once.
                query.arguments.push(SearchArgument::Real(cursor.score));
                let n = query.arguments.len();
                query.push(&format!(
                    "({score} < ${n} OR ({score} = ${n} AND {}))",
                    after_newest.sql
                ));
            }
        }
    }
    query
        .push(&format!(
            " ORDER BY {} LIMIT ",
            order_by(engine, request.order, "")
        ))
        .bind(SearchArgument::Number(i64::from(request.limit) + 1))
        .push(") AS h");
    if engine == SearchEngine::Fts5 {
        // For the snippet: each hit's FTS5 row, matched again.
        query.push(
            " JOIN messages_search ON messages_search.rowid = h.position
              AND messages_search MATCH $1",
        );
    }
    query.push(&format!(
        " ORDER BY {}",
        order_by(engine, request.order, "h.")
    ));
    query
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
    for<'r> f64: Encode<'r, D> + Decode<'r, D> + Type<D>,
    for<'r> bool: Encode<'r, D> + Decode<'r, D> + Type<D>,
{
    async fn search(&self, caller: &Caller, request: &SearchRequest) -> Result<SearchPage> {
        let statement = search_statement(D::SEARCH_ENGINE, &self.search_language, caller, request);
        let mut query = sqlx::query_as::<D, HitRow>(sqlx::AssertSqlSafe(statement.sql));
        for argument in statement.arguments {
            query = match argument {
                SearchArgument::Text(text) => query.bind(text),
                SearchArgument::Number(number) => query.bind(number),
                SearchArgument::Real(real) => query.bind(real),
            };
        }
        let mut tx = self.pool.begin_with(D::BEGIN_SEARCH).await?;
        let rows = query.fetch_all(&mut *tx).await?;
        tx.commit().await?;
        let (rows, has_more) = page_of(rows, request.limit);
        let next = match has_more {
            true => rows.last().map(|row| SearchCursor {
                score: row.score,
                position: row.position,
                id: row.message.id.clone(),
            }),
            false => None,
        };
        let hits = rows
            .into_iter()
            .map(|row| {
                let snippet = match D::SEARCH_ENGINE {
                    SearchEngine::Postgres => headline(&row.message.body, &row.snippet),
                    SearchEngine::Fts5 => row.snippet,
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
