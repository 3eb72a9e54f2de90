//! W11's text: chat-like message bodies and the queries that search them,
//! drawn from a fixed vocabulary with Zipf's law by a small seeded PRNG, so
//! every run (and every store) holds the same words in the same messages.
//!
//! The vocabulary, most frequent first: English function words, then a
//! support chat's content words, then generated English-ish words up to
//! `VOCABULARY`. A word's frequency is proportional to 1 / rank, so at
//! 1,000,000 messages of 5-30 words the content words are in roughly
//! 13,000-60,000 messages each and the generated ones in 500-13,000.
//! `MARKERS`, rare words outside the vocabulary, give queries with few hits.

use std::collections::HashSet;
use std::ops::Range;

/// Words in the vocabulary, markers aside.
const VOCABULARY: usize = 4_000;

/// Fixes every body and query: change it and the corpus changes.
const SEED: u64 = 0x5EA2_C4ED_C0DE_0011;

/// The words of every sentence, most frequent first. No query asks for one:
/// nobody searches for "the".
const FUNCTION_WORDS: &str = "\
    the i to a and you it is my for of in on that we can this have not with be me your was but \
    at so do are if";

/// What a support chat is about, by rank after the function words: the
/// common words queries ask for. None starts as a marker does (j, q, x, z).
const CHAT_WORDS: &str = "\
    order thanks please help hello refund account payment delivery parcel today time price \
    email card issue problem update number address week tomorrow support ticket invoice \
    shipping return item size colour password login app website page error message phone call \
    back still again received sent waiting days store product box label tracking code discount \
    voucher subscription plan cancel change check know need want sorry great good morning \
    evening team manager customer service reply status missing damaged wrong bank transfer \
    charge twice receipt warranty repair replacement exchange stock available online checkout \
    basket coupon reset link screen version install download photo attached file document form \
    details name date booking reservation flight hotel seat upgrade fee balance credit \
    statement monthly billing contract renewal trial premium";

/// Rare words no vocabulary word begins with (none has a j, q, x or z at
/// its start), each put in about one message in `period`.
pub const MARKERS: [(&str, u64); 4] = [
    ("zeppelin", 1_000),
    ("quetzal", 10_000),
    ("xylophone", 100_000),
    ("jacquard", 1_000_000),
];

/// What the generated words are made of: a first syllable, up to two
/// plain ones, an ending; no j, q, x or z anywhere.
const ONSETS: [&str; 40] = [
    "b", "c", "d", "f", "g", "h", "k", "l", "m", "n", "p", "r", "s", "t", "v", "w", "br", "bl",
    "cr", "cl", "dr", "fr", "fl", "gr", "gl", "pr", "pl", "sc", "sk", "sl", "sm", "sn", "sp", "st",
    "sw", "tr", "th", "sh", "ch", "wh",
];
const NUCLEI: [&str; 11] = ["a", "e", "i", "o", "u", "ai", "ea", "ee", "oa", "ou", "ie"];
const CONSONANTS: [&str; 14] = [
    "b", "c", "d", "f", "g", "l", "m", "n", "p", "r", "s", "t", "v", "w",
];
const VOWELS: [&str; 5] = ["a", "e", "i", "o", "u"];
const CODAS: [&str; 14] = [
    "", "", "", "n", "r", "s", "t", "l", "m", "nd", "nt", "st", "ck", "ng",
];
const SUFFIXES: [&str; 10] = ["", "", "", "", "s", "er", "ing", "ed", "ly", "tion"];

/// SplitMix64: a few lines, fast, and the same numbers on every machine.
pub struct Prng(u64);

impl Prng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }

    /// Uniform in `[0, 1)`.
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Which words a query asks for.
#[derive(Clone, Copy)]
pub enum WordClass {
    /// One of `CHAT_WORDS`: thousands to tens of thousands of hits.
    Common,
    /// One of the generated words: hundreds to thousands of hits.
    Generated,
    /// One of `MARKERS`: about 1,000 hits at most, often none.
    Marker,
}

/// The vocabulary with its Zipf weights.
pub struct Corpus {
    /// Every word, most frequent first.
    words: Vec<String>,
    /// Where `CHAT_WORDS` are in `words`; the generated words follow.
    chat_words: Range<usize>,
    /// `cumulative[rank]`: the weights of the words up to `rank`, included.
    cumulative: Vec<f64>,
}

impl Corpus {
    pub fn new() -> Self {
        let mut words: Vec<String> = FUNCTION_WORDS
            .split_whitespace()
            .chain(CHAT_WORDS.split_whitespace())
            .map(str::to_owned)
            .collect();
        let chat_words = FUNCTION_WORDS.split_whitespace().count()..words.len();
        let mut seen: HashSet<String> = words.iter().cloned().collect();
        let mut rng = Prng::new(SEED);
        while words.len() < VOCABULARY {
            let plain_syllables = rng.below(3);
            let mut pick = |parts: &[&'static str]| parts[rng.below(parts.len())];
            let mut word = format!("{}{}", pick(&ONSETS), pick(&NUCLEI));
            for _ in 0..plain_syllables {
                word.push_str(pick(&CONSONANTS));
                word.push_str(pick(&VOWELS));
            }
            word.push_str(pick(&CODAS));
            word.push_str(pick(&SUFFIXES));
            if seen.insert(word.clone()) {
                words.push(word);
            }
        }
        let cumulative = (1..=words.len())
            .scan(0.0, |total, rank| {
                *total += 1.0 / rank as f64;
                Some(*total)
            })
            .collect();
        Self {
            words,
            chat_words,
            cumulative,
        }
    }

    /// A word of the vocabulary, drawn by its frequency.
    fn zipf_word(&self, rng: &mut Prng) -> &str {
        let total = self.cumulative.last().copied().unwrap_or(0.0);
        let wanted = rng.unit() * total;
        let rank = self.cumulative.partition_point(|&sum| sum <= wanted);
        &self.words[rank.min(self.words.len() - 1)]
    }

    /// Message `n`'s body: 5-30 words by frequency, each marker in about
    /// one message in its period, a capital and a full stop or a question
    /// mark. Always the same for the same `n`.
    pub fn body(&self, n: usize) -> String {
        let mut rng = Prng::new(SEED.wrapping_add(1 + n as u64));
        let length = 5 + rng.below(26);
        let mut words: Vec<&str> = (0..length).map(|_| self.zipf_word(&mut rng)).collect();
        for (marker, period) in MARKERS {
            if rng.below(period as usize) == 0 {
                let at = rng.below(words.len());
                words[at] = marker;
            }
        }
        let mut body = words.join(" ");
        body[..1].make_ascii_uppercase();
        body.push(if rng.below(4) == 0 { '?' } else { '.' });
        body
    }

    /// A word for a query, of `class`: uniformly among the words of that class.
    pub fn query_word(&self, class: WordClass, rng: &mut Prng) -> &str {
        let Range { start, end } = self.chat_words;
        match class {
            WordClass::Common => &self.words[start + rng.below(end - start)],
            WordClass::Generated => &self.words[end + rng.below(self.words.len() - end)],
            WordClass::Marker => MARKERS[rng.below(MARKERS.len())].0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_hold_5_to_30_words_and_are_the_same_every_time() {
        let corpus = Corpus::new();
        for n in 0..1_000 {
            let body = corpus.body(n);
            let words = body.split(' ').count();
            assert!((5..=30).contains(&words), "{words} words: {body}");
            assert_eq!(body, Corpus::new().body(n));
        }
        assert_ne!(corpus.body(1), corpus.body(2));
    }

    #[test]
    fn no_word_of_the_vocabulary_begins_with_a_marker() {
        let corpus = Corpus::new();
        assert_eq!(corpus.words.len(), VOCABULARY);
        for (marker, _) in MARKERS {
            assert!(corpus.words.iter().all(|word| !word.starts_with(marker)));
        }
    }

    #[test]
    fn markers_come_about_once_in_their_period() {
        let corpus = Corpus::new();
        let messages = 200_000;
        let with = |marker: &str| {
            (0..messages)
                .filter(|&n| corpus.body(n).contains(marker))
                .count()
        };
        // zeppelin, one in 1,000: about 200.
        assert!((150..250).contains(&with("zeppelin")));
    }

    #[test]
    fn frequent_words_come_first() {
        let corpus = Corpus::new();
        let bodies: Vec<String> = (0..2_000).map(|n| corpus.body(n)).collect();
        let count = |word: &str| {
            bodies
                .iter()
                .filter(|body| {
                    body.to_lowercase()
                        .split([' ', '.', '?'])
                        .any(|w| w == word)
                })
                .count()
        };
        assert!(count("the") > count("order"));
        assert!(count("order") > count(&corpus.words[VOCABULARY - 1]));
    }
}
