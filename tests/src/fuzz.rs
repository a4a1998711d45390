//! A bounded random-input driver on the stable toolchain: structure-aware mutations of the real
//! fixtures (every event in `events/`, secret JSON, Budgets text, Function URL bodies), fed to
//! each function's entry points, each input within a time and a memory bound.
//!
//! The inputs come from a seeded generator, so a failing run is reproduced by its seed
//! (`WATCHKEEPER_FUZZ_SEED`); `WATCHKEEPER_FUZZ_CASES` sets how many inputs per entry point.

use serde_json::{Map, Value};

/// A small, fast, seeded generator (SplitMix64): reproducible inputs, no extra dependency.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
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

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next_u64() % n as u64) as usize
        }
    }

    pub fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        items.get(self.below(items.len()))
    }
}

/// Strings that break naive parsers: empty, huge, control characters, other scripts, numbers at
/// the edges, format look-alikes.
const NASTY: &[&str] = &[
    "",
    " ",
    "\0",
    "\u{202e}",
    "\r\n\r\n",
    "ñandú €",
    "🦀",
    "-1",
    "0",
    "NaN",
    "1e309",
    "18446744073709551616",
    "-9223372036854775809",
    "9999-99-99T99:99:99Z",
    "2026-02-30T00:00:00Z",
    "arn:",
    "arn:aws:rds:us-east-1:123456789012:snapshot:",
    "arn:aws:rds:us-east-1:123456789012:snapshot:rds:",
    "$",
    "$-",
    "$1,2,3.4.5",
    "> $",
    "%",
    "../../etc/passwd",
    "sha256=",
    "t=,v1=",
    "{\"",
    "[",
    "createSecret",
    "AWSPENDING",
    "postgres",
    "mysql",
    "127.0.0.1",
    "169.254.169.254",
    "10.0.0.1/33",
    "0.0.0.0/0",
];

/// A random string: nasty, random bytes as text, or a long run.
pub fn string(rng: &mut Rng) -> String {
    match rng.below(4) {
        0 => rng.pick(NASTY).copied().unwrap_or_default().to_string(),
        1 => {
            let len = rng.below(40);
            (0..len)
                .map(|_| char::from_u32(rng.below(0x3000) as u32).unwrap_or('?'))
                .collect()
        }
        2 => "A".repeat(rng.below(100_000)),
        _ => {
            let len = rng.below(12);
            (0..len)
                .map(|_| (b'a' + rng.below(26) as u8) as char)
                .collect()
        }
    }
}

/// A random JSON value of bounded depth.
pub fn value(rng: &mut Rng, depth: usize) -> Value {
    match rng.below(if depth == 0 { 5 } else { 7 }) {
        0 => Value::Null,
        1 => Value::Bool(rng.chance(2)),
        2 => match rng.below(3) {
            0 => Value::from(rng.next_u64() as i64),
            1 => Value::from(rng.next_u64()),
            _ => serde_json::Number::from_f64(f64::from_bits(rng.next_u64()))
                .map(Value::Number)
                .unwrap_or(Value::Null),
        },
        3 | 4 => Value::String(string(rng)),
        5 => Value::Array((0..rng.below(4)).map(|_| value(rng, depth - 1)).collect()),
        _ => {
            let mut map = Map::new();
            for _ in 0..rng.below(4) {
                map.insert(string(rng), value(rng, depth - 1));
            }
            Value::Object(map)
        }
    }
}

/// Mutates a JSON document in place at one random spot: a value replaced (by another type, a
/// nasty string, a nested document), a key dropped or added, an array emptied or grown.
pub fn mutate(rng: &mut Rng, doc: &mut Value) {
    // Choose the spot first (a JSON pointer), then change it.
    let depth = rng.below(6);
    let mut pointer = String::new();
    let mut here: &Value = doc;
    for _ in 0..depth {
        let step = match here {
            Value::Object(map) if !map.is_empty() => map
                .iter()
                .nth(rng.below(map.len()))
                .map(|(k, v)| (k.clone(), v)),
            Value::Array(items) if !items.is_empty() => {
                let i = rng.below(items.len());
                items.get(i).map(|v| (i.to_string(), v))
            }
            _ => None,
        };
        let Some((token, child)) = step else { break };
        pointer.push('/');
        pointer.push_str(&token.replace('~', "~0").replace('/', "~1"));
        here = child;
    }
    let Some(node) = doc.pointer_mut(&pointer) else {
        return;
    };
    match (rng.below(6), &mut *node) {
        (0, Value::Object(map)) if !map.is_empty() => {
            let key = map.keys().nth(rng.below(map.len())).cloned();
            if let Some(key) = key {
                map.remove(&key);
            }
        }
        (1, Value::Object(map)) => {
            map.insert(string(rng), value(rng, 2));
        }
        (2, Value::Array(items)) => {
            if rng.chance(2) {
                items.clear();
            } else if let Some(first) = items.first().cloned() {
                items.extend(std::iter::repeat_n(first, rng.below(50)));
            }
        }
        (3, Value::String(text)) => {
            // Keep most of the text and splice something in: near-valid inputs go deepest.
            let cut = text
                .char_indices()
                .map(|(i, _)| i)
                .nth(rng.below(text.chars().count() + 1))
                .unwrap_or(text.len());
            text.insert_str(cut, &string(rng));
        }
        _ => *node = value(rng, 3),
    }
}

/// Mutates text: characters flipped, spliced, lines dropped or repeated.
pub fn mutate_text(rng: &mut Rng, text: &str) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    for _ in 0..=rng.below(3) {
        let i = rng.below(lines.len().max(1));
        match rng.below(5) {
            0 if i < lines.len() => {
                lines.remove(i);
            }
            1 if i < lines.len() => {
                let line = lines[i].clone();
                lines.insert(i, line);
            }
            2 if i < lines.len() => {
                let chars: Vec<char> = lines[i].chars().collect();
                let cut = rng.below(chars.len() + 1);
                let mut line: String = chars[..cut].iter().collect();
                line.push_str(&string(rng));
                line.extend(chars[cut..].iter());
                lines[i] = line;
            }
            3 if i < lines.len() => {
                // Digits swapped for other digits: amounts and percentages at odd values.
                lines[i] = lines[i]
                    .chars()
                    .map(|c| {
                        if c.is_ascii_digit() && rng.chance(2) {
                            (b'0' + rng.below(10) as u8) as char
                        } else {
                            c
                        }
                    })
                    .collect();
            }
            _ => lines.insert(i.min(lines.len()), string(rng)),
        }
    }
    lines.join("\n")
}

/// Integers at the edges of the types a document's numbers are read into (u32, i64, u64) and
/// their neighbours: counters one step from overflow, sequence numbers that would wrap.
const EDGE_NUMBERS: &[u64] = &[
    0,
    1,
    u32::MAX as u64 - 1,
    u32::MAX as u64,
    u32::MAX as u64 + 1,
    i64::MAX as u64,
    i64::MAX as u64 + 1,
    u64::MAX - 1,
    u64::MAX,
];

/// Mutates one spot of a JSON document and keeps its JSON type: a number set to an integer at a
/// type's edge, a string replaced by another string of the same document (an enum variant, a
/// date or an address that fits elsewhere) or by a nasty one, a boolean flipped, an object entry
/// copied under another key (a map gains an entry with a hostile key) or removed, an array
/// emptied, grown or shortened. A typed reader (a serde struct) accepts many of these, so they
/// reach the code that uses a parsed document; [`mutate`] mostly reaches the parser.
pub fn mutate_keeping_types(rng: &mut Rng, doc: &mut Value) {
    fn survey(value: &Value, pointer: String, spots: &mut Vec<String>, words: &mut Vec<String>) {
        match value {
            Value::String(text) => words.push(text.clone()),
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    survey(item, format!("{pointer}/{i}"), spots, words);
                }
            }
            Value::Object(map) => {
                for (key, item) in map {
                    words.push(key.clone());
                    let token = key.replace('~', "~0").replace('/', "~1");
                    survey(item, format!("{pointer}/{token}"), spots, words);
                }
            }
            _ => {}
        }
        spots.push(pointer);
    }
    let mut spots = Vec::new();
    let mut words = Vec::new();
    survey(doc, String::new(), &mut spots, &mut words);
    let Some(pointer) = rng.pick(&spots).cloned() else {
        return;
    };
    // Mostly a word of the document itself: a nasty string rarely fits the field it replaces.
    let word = match rng.pick(&words) {
        Some(word) if !rng.chance(4) => word.clone(),
        _ => string(rng),
    };
    let Some(node) = doc.pointer_mut(&pointer) else {
        return;
    };
    match node {
        Value::Null => {}
        Value::Bool(flag) => *flag = !*flag,
        Value::Number(_) => {
            *node = Value::from(rng.pick(EDGE_NUMBERS).copied().unwrap_or_default());
        }
        Value::String(text) => *text = word,
        Value::Object(map) => {
            let picked = map
                .iter()
                .nth(rng.below(map.len()))
                .map(|(key, value)| (key.clone(), value.clone()));
            if let Some((key, value)) = picked {
                if rng.chance(4) {
                    map.remove(&key);
                } else {
                    map.insert(word, value);
                }
            }
        }
        Value::Array(items) => match rng.below(3) {
            0 => items.clear(),
            1 => {
                if let Some(first) = items.first().cloned() {
                    items.extend(std::iter::repeat_n(first, rng.below(50)));
                }
            }
            _ => {
                if !items.is_empty() {
                    items.remove(rng.below(items.len()));
                }
            }
        },
    }
}
