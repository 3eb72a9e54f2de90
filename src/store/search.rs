//! Full-text search of messages: what a person typed, parsed once into words
//! each engine is given safely (PostgreSQL's `websearch_to_tsquery`, SQLite's
//! FTS5 with every word quoted), and what a search answers. The engines'
//! indexes follow the messages' bodies in the statements that change them
//! (migration 0017), so an edit, deletion or erasure is never found by its
//! old words; who may find what is the query's, as for a room's history.

use crate::error::{Error, Result};
use crate::model::{Caller, Message, RoomId, Timestamp, UserId};
use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The most characters a query may have.
pub const MAX_QUERY_CHARS: usize = 200;
/// The most hits a page holds.
pub const MAX_SEARCH_PAGE: u32 = 50;

/// Where a snippet's matching words start and stop, as the engines are
/// told to mark them: control characters, which a snippet's text never
/// shows (PostgreSQL's are taken out of the body first; SQLite's snippet
/// keeps a body's own, which then only mark words wrongly).
pub const MATCH_START: char = '\u{1}';
pub const MATCH_STOP: char = '\u{2}';

#[async_trait]
pub trait SearchStore: Send + Sync {
    /// The messages `request` finds that the caller may read: an admin's in
    /// every room, anyone else's in the rooms they are a member of now; never
    /// a deleted message or one of a deleted room.
    async fn search(&self, caller: &Caller, request: &SearchRequest) -> Result<SearchPage>;
}

#[derive(Debug, Clone)]
pub struct SearchRequest {
    pub text: SearchText,
    pub room: Option<RoomId>,
    pub author: Option<UserId>,
    /// Written at or after.
    pub since: Option<Timestamp>,
    /// Written before.
    pub until: Option<Timestamp>,
    pub order: SearchOrder,
    pub limit: u32,
    /// Where the previous page ended.
    pub after: Option<SearchCursor>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, ToSchema, Default)]
#[serde(rename_all = "lowercase")]
pub enum SearchOrder {
    /// The newest first.
    #[default]
    Newest,
    /// The best matches first (ties: the newest first).
    Relevance,
}

/// Where a page of hits ended: the last hit's place in the engine's
/// newest-first order and its id; by relevance, also the newest place the
/// ranked window held, so that later pages rank the same window. Opaque to
/// clients, and holding no score: SQLite's bm25 is computed over every
/// room's messages, and a score would tell how many of them hold a word.
/// (A later page re-reads the last hit's score instead.)
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SearchCursor {
    #[serde(rename = "p")]
    pub position: i64,
    #[serde(rename = "i")]
    pub id: String,
    #[serde(rename = "t", default, skip_serializing_if = "Option::is_none")]
    pub top: Option<i64>,
}

impl SearchCursor {
    pub fn encode(&self) -> String {
        // A struct of plain fields always serialises.
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(self).unwrap_or_default())
    }

    pub fn decode(text: &str) -> Result<Self> {
        URL_SAFE_NO_PAD
            .decode(text)
            .ok()
            .and_then(|json| serde_json::from_slice::<Self>(&json).ok())
            .ok_or_else(|| {
                Error::bad_request(
                    "invalid_cursor",
                    "`cursor` must be the `next` of an earlier answer",
                )
            })
    }
}

#[derive(Debug)]
pub struct SearchPage {
    pub hits: Vec<SearchHit>,
    pub next: Option<SearchCursor>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SearchHit {
    pub message: Message,
    pub room_name: String,
    /// Part of the body around the matching words, as plain text in parts.
    pub snippet: Vec<SnippetPart>,
}

/// A piece of a snippet: text to show as text (never as markup), and
/// whether it is a matching word.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct SnippetPart {
    pub text: String,
    #[serde(rename = "match")]
    pub matched: bool,
}

/// A snippet as an engine marked it (`MATCH_START`, `MATCH_STOP`), in parts.
pub fn snippet_parts(marked: &str) -> Vec<SnippetPart> {
    let mut parts: Vec<SnippetPart> = Vec::new();
    let mut matched = false;
    let mut text = String::new();
    let mut flush = |text: &mut String, matched: bool| {
        if text.is_empty() {
            return;
        }
        match parts.last_mut() {
            Some(last) if last.matched == matched => last.text.push_str(text),
            _ => parts.push(SnippetPart {
                text: text.clone(),
                matched,
            }),
        }
        text.clear();
    };
    for c in marked.chars() {
        match c {
            MATCH_START => {
                flush(&mut text, matched);
                matched = true;
            }
            MATCH_STOP => {
                flush(&mut text, matched);
                matched = false;
            }
            c => text.push(c),
        }
    }
    flush(&mut text, matched);
    parts
}

/// A search as typed, parsed the way web search engines read one: words
/// (all must match), `"a phrase"`, `-word` (must not), `a or b`. The last
/// word, typed without a space after it, also matches as the start of a
/// word, so that search-as-you-type finds as it goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchText {
    /// Every clause must hold; a clause is one term, or terms joined by `or`.
    clauses: Vec<Vec<Term>>,
    /// Whether the last clause is one plain word to match as a prefix.
    prefix: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Term {
    /// One word, or the words of a phrase, in order.
    words: Vec<String>,
    negated: bool,
}

impl SearchText {
    pub fn parse(text: &str) -> Result<Self> {
        if text.chars().count() > MAX_QUERY_CHARS {
            return Err(invalid_query(format!(
                "`q` must be at most {MAX_QUERY_CHARS} characters"
            )));
        }
        let mut terms: Vec<(Term, bool)> = Vec::new(); // (term, an `or` before it)
        let mut or_pending = false;
        let mut rest = text;
        let mut last_plain = false;
        loop {
            rest = rest.trim_start_matches(is_space);
            if rest.is_empty() {
                break;
            }
            let negated = rest.starts_with('-');
            if negated {
                rest = &rest[1..];
            }
            let (raw, quoted, after) = if let Some(inner) = rest.strip_prefix('"') {
                match inner.find('"') {
                    Some(end) => (&inner[..end], true, &inner[end + 1..]),
                    None => (inner, true, ""),
                }
            } else {
                let end = rest
                    .find(|c: char| is_space(c) || c == '"')
                    .unwrap_or(rest.len());
                (&rest[..end], false, &rest[end..])
            };
            rest = after;
            let words = words_of(raw);
            if words.is_empty() {
                continue;
            }
            if !quoted && !negated && words.len() == 1 && words[0].eq_ignore_ascii_case("or") {
                or_pending = !terms.is_empty();
                last_plain = false;
                continue;
            }
            last_plain = !quoted && !negated && words.len() == 1 && rest.is_empty();
            terms.push((Term { words, negated }, or_pending));
            or_pending = false;
        }
        let mut clauses: Vec<Vec<Term>> = Vec::new();
        for (term, joined) in terms {
            match clauses.last_mut() {
                Some(clause) if joined => clause.push(term),
                _ => clauses.push(vec![term]),
            }
        }
        // `a or -b` finds nearly everything, which no index can serve: `or`
        // joins only what may be found.
        for clause in clauses.iter_mut().filter(|clause| clause.len() > 1) {
            clause.retain(|term| !term.negated);
        }
        clauses.retain(|clause| !clause.is_empty());
        if !clauses.iter().any(|c| c.iter().any(|t| !t.negated)) {
            return Err(invalid_query(
                "`q` has no word to search for (words of letters or digits, not only `-word`s)",
            ));
        }
        let prefix = last_plain && clauses.last().is_some_and(|c| c.len() == 1);
        Ok(Self { clauses, prefix })
    }

    /// For PostgreSQL: the text for `websearch_to_tsquery`, and the last
    /// word as a `to_tsquery` prefix (`'word':*`) when it is one.
    pub fn websearch(&self) -> (String, Option<String>) {
        let (whole, prefix) = self.split_prefix();
        let text = whole
            .iter()
            .map(|clause| {
                clause
                    .iter()
                    .map(|term| {
                        let sign = if term.negated { "-" } else { "" };
                        // One word alone unless it is the operator `or`.
                        match term.words.as_slice() {
                            [word] if !word.eq_ignore_ascii_case("or") => format!("{sign}{word}"),
                            words => format!("{sign}\"{}\"", words.join(" ")),
                        }
                    })
                    .collect::<Vec<_>>()
                    .join(" or ")
            })
            .collect::<Vec<_>>()
            .join(" ");
        // Quoted for `to_tsquery`, whose quoted strings escape with `\`
        // and double `'`.
        let prefix =
            prefix.map(|word| format!("'{}':*", word.replace('\\', "\\\\").replace('\'', "''")));
        (text, prefix)
    }

    /// For SQLite: an FTS5 query in which every word is a quoted string,
    /// so no input is read as FTS5's own syntax.
    pub fn fts5(&self) -> String {
        let (whole, prefix) = self.split_prefix();
        let quote = |words: &[String]| format!("\"{}\"", words.join(" ").replace('"', "\"\""));
        let mut positive: Vec<String> = Vec::new();
        let mut negative: Vec<String> = Vec::new();
        for clause in whole {
            if clause.len() == 1 && clause[0].negated {
                negative.push(quote(&clause[0].words));
                continue;
            }
            let terms: Vec<String> = clause
                .iter()
                .filter(|term| !term.negated)
                .map(|term| quote(&term.words))
                .collect();
            positive.push(match terms.len() {
                1 => terms.into_iter().collect(),
                _ => format!("({})", terms.join(" OR ")),
            });
        }
        if let Some(word) = prefix {
            positive.push(format!("{}*", quote(std::slice::from_ref(word))));
        }
        let mut query = positive.join(" AND ");
        for term in negative {
            query.push_str(" NOT ");
            query.push_str(&term);
        }
        query
    }

    /// The clauses matched whole, and the last word if it is a prefix.
    fn split_prefix(&self) -> (&[Vec<Term>], Option<&String>) {
        match (self.prefix, self.clauses.split_last()) {
            (true, Some((last, whole))) => (whole, last[0].words.first()),
            _ => (&self.clauses, None),
        }
    }
}

/// The words of a piece of a query: runs of characters with a letter or a
/// digit among them, quotes taken out (they are the query's syntax).
fn words_of(raw: &str) -> Vec<String> {
    raw.split(|c: char| is_space(c) || c == '"')
        .filter(|word| word.chars().any(char::is_alphanumeric))
        .map(|word| word.trim_start_matches('-').to_owned())
        .filter(|word| !word.is_empty())
        .collect()
}

/// What separates words: white space, and control characters (a NUL
/// would not even reach PostgreSQL).
fn is_space(c: char) -> bool {
    c.is_whitespace() || c.is_control()
}

fn invalid_query(message: impl Into<std::borrow::Cow<'static, str>>) -> Error {
    Error::bad_request("invalid_query", message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> SearchText {
        SearchText::parse(text).unwrap()
    }

    #[test]
    fn words_phrases_negations_and_ors_are_read_as_a_web_search_reads_them() {
        let text = parse(r#"refund "last week" -later cancel or stop "#);
        assert_eq!(
            text.websearch(),
            (
                r#"refund "last week" -later cancel or stop"#.to_owned(),
                None
            )
        );
        assert_eq!(
            text.fts5(),
            r#""refund" AND "last week" AND ("cancel" OR "stop") NOT "later""#
        );
    }

    #[test]
    fn the_last_word_typed_without_a_space_after_it_is_a_prefix() {
        let text = parse("promised refu");
        assert_eq!(
            text.websearch(),
            ("promised".to_owned(), Some("'refu':*".to_owned()))
        );
        assert_eq!(text.fts5(), r#""promised" AND "refu"*"#);
        // Not after a space, nor a phrase, a negation or part of an `or`.
        assert_eq!(parse("refu ").websearch().1, None);
        assert_eq!(parse("\"refu\"").websearch().1, None);
        assert_eq!(parse("a -refu").websearch().1, None);
        assert_eq!(parse("a or refu").websearch().1, None);
    }

    #[test]
    fn the_engines_syntax_in_a_query_is_only_text() {
        for hostile in [
            r#"a" OR "b"#,
            "NEAR(a b) x*",
            "a AND NOT b",
            "'; DROP TABLE messages; --",
            "%_*:&|!() a\\",
            "C:\\Users\\",
            "body:secret",
            "😀 refund",
            "don't",
        ] {
            let text = parse(hostile);
            let fts5 = text.fts5();
            // Every word is inside quotes; quotes inside are doubled.
            assert!(fts5.starts_with('"') || fts5.starts_with('('), "{fts5}");
            let (_, prefix) = text.websearch();
            if let Some(prefix) = prefix {
                assert!(
                    prefix.starts_with('\'') && prefix.ends_with("':*"),
                    "{prefix}"
                );
                assert_eq!(prefix[1..prefix.len() - 3].matches('\'').count() % 2, 0);
            }
        }
    }

    #[test]
    fn a_query_without_a_word_to_find_is_refused() {
        for empty in ["", "   ", "\"\"", "😀", "-refund", "- -", "***", "or"] {
            let error = SearchText::parse(empty).unwrap_err();
            assert_eq!(error.code(), "invalid_query", "{empty:?}");
        }
        assert!(SearchText::parse(&"a".repeat(MAX_QUERY_CHARS + 1)).is_err());
    }

    #[test]
    fn a_snippet_is_split_at_its_marks_into_text_parts() {
        let parts = snippet_parts("we \u{1}promised\u{2} a \u{1}<b>\u{2}");
        let show: Vec<(&str, bool)> = parts.iter().map(|p| (p.text.as_str(), p.matched)).collect();
        assert_eq!(
            show,
            [
                ("we ", false),
                ("promised", true),
                (" a ", false),
                ("<b>", true)
            ]
        );
        assert!(snippet_parts("").is_empty());
    }

    #[test]
    fn a_cursor_survives_its_encoding_and_a_forged_one_is_refused() {
        let cursor = SearchCursor {
            position: 1_765_000_000_000,
            id: "m".to_owned(),
            top: Some(1_765_000_000_001),
        };
        assert_eq!(SearchCursor::decode(&cursor.encode()).unwrap(), cursor);
        assert!(SearchCursor::decode("not a cursor").is_err());
    }
}
