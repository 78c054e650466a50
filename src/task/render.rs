//! The two forms of a [`TaskTree`]: text for people, JSON for tools.
//!
//! Both are written with plain pushes into one `String`. `core::fmt`
//! makes a dozen small writes per line and formats integers through a
//! generic padding path, which made the text of 10k tasks three times
//! slower; `serde_json` escapes every key byte by byte and passes each
//! token through `io::Write`, which made the JSON three to four times
//! slower. The JSON written here is byte for byte what `serde_json` makes
//! of the derived `Serialize` (a test holds the two together).

use super::tree::{SpanEntry, TaskEntry, TaskTree, LONG_IDLE};

/// The tree as text: one line per task and per open span.
pub(super) fn text(tree: &TaskTree) -> String {
    let mut out = String::with_capacity(text_size(tree));
    write_text(tree, &mut out, 0);
    out
}

/// About the room the text of `tree` takes: reserved once, so a 10k-task
/// dump is not copied as it grows.
pub(super) fn text_size(tree: &TaskTree) -> usize {
    96 * (tree.tasks.len() + tree.spans.len())
}

/// Appends the text of `tree` to `out`, every line indented `indent`
/// levels more (a gathered dump nests each actor's tree).
pub(super) fn write_text(tree: &TaskTree, out: &mut String, indent: usize) {
    let mut out = Out::new(out, indent);
    for task in &tree.tasks {
        out.task(task, tree.spans_of(task));
    }
}

/// The tree as JSON, the shape of its derived `Serialize`.
pub(super) fn json(tree: &TaskTree) -> String {
    let mut out = String::with_capacity(json_size(tree));
    write_json(tree, &mut out);
    out
}

/// About the room the JSON of `tree` takes.
pub(super) fn json_size(tree: &TaskTree) -> usize {
    256 * tree.tasks.len() + 48 * tree.spans.len() + 32
}

/// Appends the JSON of `tree` to `out`.
pub(super) fn write_json(tree: &TaskTree, out: &mut String) {
    let mut out = Out::new(out, 0);
    out.push("{\"tasks\":");
    out.list(&tree.tasks, Out::task_json);
    if !tree.spans.is_empty() {
        out.push(",\"spans\":");
        out.list(&tree.spans, Out::span_json);
    }
    out.push("}");
}

/// A buffer being written, and the extra indent of text lines. A
/// `String`, not bytes: what goes in is whole `&str`s, their pieces cut
/// at ASCII bytes, and ASCII digits, so there is nothing to validate at
/// the end (that pass over the 3 MiB of a 10k-task dump took 7% of it).
struct Out<'a> {
    buf: &'a mut String,
    indent: usize,
    /// Strings found to need no escapes, by address and length, replaced
    /// in turn: the same names, file names and span labels recur on most
    /// tasks of a dump, and are scanned once. A tree's strings all live
    /// as long as its rendering, so an address and a length name one
    /// text.
    plain: [(usize, usize); PLAIN],
    next_plain: usize,
}

/// Strings [`Out`] remembers as plain.
const PLAIN: usize = 16;

/// The decimal pairs `00` to `99`.
const PAIRS: &str = "0001020304050607080910111213141516171819\
    2021222324252627282930313233343536373839\
    4041424344454647484950515253545556575859\
    6061626364656667686970717273747576777879\
    8081828384858687888990919293949596979899";

impl<'a> Out<'a> {
    fn new(buf: &'a mut String, indent: usize) -> Self {
        Out {
            buf,
            indent,
            plain: [(0, 0); PLAIN],
            next_plain: 0,
        }
    }
}

impl Out<'_> {
    #[inline]
    fn push(&mut self, s: &str) {
        self.buf.push_str(s);
    }

    #[inline]
    fn pair(&mut self, n: u64) {
        let at = n as usize * 2;
        self.buf.push_str(&PAIRS[at..at + 2]);
    }

    fn num(&mut self, mut n: u64) {
        // Depths, leaf counts and poll counts are mostly one digit.
        if n < 10 {
            self.buf.push(char::from(b'0' + n as u8));
            return;
        }
        // Two digits per division, pushed most significant first: a dump
        // prints ~5 numbers per task.
        let mut low = [0u8; 10];
        let mut k = 0;
        while n >= 100 {
            low[k] = (n % 100) as u8;
            n /= 100;
            k += 1;
        }
        if n >= 10 {
            self.pair(n);
        } else {
            self.buf.push(char::from(b'0' + n as u8));
        }
        for &pair in low[..k].iter().rev() {
            self.pair(u64::from(pair));
        }
    }

    /// `n` with `digits` decimals, zero-padded (`4`, 2 -> `04`).
    fn frac(&mut self, n: u64, digits: u32) {
        let mut scale = 10u64.pow(digits.saturating_sub(1));
        while scale > 1 && n < scale {
            self.push("0");
            scale /= 10;
        }
        self.num(n);
    }

    /// A duration the way a person reads it: `850us`, `12.3ms`, `4.20s`.
    fn human(&mut self, us: u64) {
        match us {
            0..=999 => {
                self.num(us);
                self.push("us");
            }
            1_000..=999_999 => {
                self.num(us / 1_000);
                self.push(".");
                self.num(us % 1_000 / 100);
                self.push("ms");
            }
            _ => {
                self.num(us / 1_000_000);
                self.push(".");
                self.frac(us % 1_000_000 / 10_000, 2);
                self.push("s");
            }
        }
    }

    fn pad(&mut self, depth: usize) {
        const SPACES: &str = "                                ";
        let mut left = 2 * (self.indent + depth);
        while left > 0 {
            let step = left.min(SPACES.len());
            self.push(&SPACES[..step]);
            left -= step;
        }
    }

    fn task(&mut self, t: &TaskEntry, spans: &[SpanEntry]) {
        let depth = t.depth as usize;
        self.pad(depth);
        self.push("task #");
        self.num(t.id);
        self.push(" ");
        self.push(&t.name);
        self.push(if !t.polling {
            " - idle "
        } else if t.for_us >= LONG_IDLE.as_micros() as u64 {
            // No await point for that long: it holds its thread, and
            // every task queued behind it waits.
            " - [LONG POLL: blocks its thread] polling "
        } else {
            " - polling "
        });
        self.human(t.for_us);
        self.push(", ");
        self.num(t.polls);
        self.push(" polls, busy ");
        self.human(t.busy_us);
        self.push(", spawned at ");
        self.push(&t.file);
        self.push(":");
        self.num(u64::from(t.line));
        if let Some(parent) = t.parent.filter(|_| depth == 0) {
            self.push(" (parent #");
            self.num(parent);
            self.push(" ended)");
        }
        if t.long_idle {
            self.push(" [LONG IDLE]");
        }
        self.push("\n");
        for span in spans {
            self.span(t, span, depth + 1);
        }
    }

    fn span(&mut self, t: &TaskEntry, s: &SpanEntry, depth: usize) {
        self.pad(depth + s.depth as usize);
        let plain = s
            .what
            .bytes()
            .all(|b| b >= b' ' && b != b'"' && b != b'\\' && b != 0x7f);
        if plain {
            // Labels are string literals: quoting them needs no escapes.
            self.push("await \"");
            self.push(&s.what);
            self.push("\"");
        } else {
            self.push("await ");
            self.push(&format!("{:?}", s.what));
        }
        if s.leaf && !t.polling {
            // A leaf span of an idle task is what the task waits on.
            self.push(" <- waiting ");
            self.human(t.for_us);
            if t.long_idle {
                self.push(" [LONG IDLE]");
            }
        }
        self.push("\n");
    }
}

/// The JSON form: fields in declaration order, as serde derives them.
impl Out<'_> {
    /// A JSON array of `items`, each written by `each`.
    fn list<T>(&mut self, items: &[T], mut each: impl FnMut(&mut Self, &T)) {
        self.push("[");
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                self.push(",");
            }
            each(self, item);
        }
        self.push("]");
    }

    fn task_json(&mut self, t: &TaskEntry) {
        self.push("{\"id\":");
        self.num(t.id);
        self.push(",\"name\":");
        self.string(&t.name);
        self.push(",\"parent\":");
        match t.parent {
            Some(parent) => self.num(parent),
            None => self.push("null"),
        }
        self.push(",\"depth\":");
        self.num(u64::from(t.depth));
        self.push(",\"file\":");
        self.string(&t.file);
        self.push(",\"line\":");
        self.num(u64::from(t.line));
        self.push(",\"polling\":");
        self.boolean(t.polling);
        self.push(",\"for_us\":");
        self.num(t.for_us);
        self.push(",\"polls\":");
        self.num(t.polls);
        self.push(",\"busy_us\":");
        self.num(t.busy_us);
        self.push(",\"long_idle\":");
        self.boolean(t.long_idle);
        if !t.spans.is_empty() {
            self.push(",\"spans\":{\"start\":");
            self.num(u64::from(t.spans.start));
            self.push(",\"end\":");
            self.num(u64::from(t.spans.end));
            self.push("}");
        }
        self.push("}");
    }

    fn span_json(&mut self, s: &SpanEntry) {
        self.push("{\"what\":");
        self.string(&s.what);
        self.push(",\"depth\":");
        self.num(u64::from(s.depth));
        self.push(",\"leaf\":");
        self.boolean(s.leaf);
        self.push("}");
    }

    fn boolean(&mut self, b: bool) {
        self.push(if b { "true" } else { "false" });
    }

    /// A JSON string, escaped the way `serde_json` does: `"` and `\\`,
    /// the short forms of five control characters, `\u00XX` for the
    /// others; everything else as it is. Runs with nothing to escape are
    /// copied whole.
    fn string(&mut self, s: &str) {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let bytes = s.as_bytes();
        // Names, files and labels are nearly always plain: checked without
        // a branch per byte, then copied in one go.
        let key = (s.as_ptr() as usize, s.len());
        let plain = self.plain.contains(&key) || {
            let plain = bytes
                .iter()
                .fold(true, |ok, &b| ok & (b >= 0x20) & (b != b'"') & (b != b'\\'));
            if plain {
                self.plain[self.next_plain % PLAIN] = key;
                self.next_plain += 1;
            }
            plain
        };
        self.buf.push('"');
        if plain {
            self.buf.push_str(s);
            self.buf.push('"');
            return;
        }
        let mut run = 0;
        for (i, &b) in bytes.iter().enumerate() {
            let short = match b {
                b'"' => '"',
                b'\\' => '\\',
                b'\n' => 'n',
                b'\r' => 'r',
                b'\t' => 't',
                0x08 => 'b',
                0x0c => 'f',
                0..=0x1f => '\0',
                _ => continue,
            };
            // Cut at an ASCII byte: always a character boundary.
            self.buf.push_str(&s[run..i]);
            run = i + 1;
            self.buf.push('\\');
            if short != '\0' {
                self.buf.push(short);
            } else {
                self.buf.push_str("u00");
                self.buf.push(char::from(HEX[usize::from(b >> 4)]));
                self.buf.push(char::from(HEX[usize::from(b & 0xf)]));
            }
        }
        self.buf.push_str(&s[run..]);
        self.buf.push('"');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn written(f: impl FnOnce(&mut Out<'_>)) -> String {
        let mut buf = String::new();
        f(&mut Out::new(&mut buf, 0));
        buf
    }

    #[test]
    fn numbers_print_in_decimal() {
        for n in [0, 7, 10, 99, 100, 101, 12_345, 1_000_000, u64::MAX] {
            assert_eq!(written(|t| t.num(n)), n.to_string());
        }
    }

    #[test]
    fn durations_read_like_a_person_writes_them() {
        let h = |us| written(|t| t.human(us));
        assert_eq!(
            [
                h(0),
                h(999),
                h(1_250),
                h(999_999),
                h(4_206_000),
                h(7_040_000)
            ],
            ["0us", "999us", "1.2ms", "999.9ms", "4.20s", "7.04s"]
        );
    }

    fn tree_with_every_field_set() -> TaskTree {
        // Every byte that JSON may escape, quotes, and text beyond ASCII.
        let awkward: String = (0u8..0x80)
            .map(char::from)
            .chain("é→𝄞\"\\".chars())
            .collect();
        let task = |id, parent, spans: std::ops::Range<u32>| TaskEntry {
            id,
            name: format!("task {id} {awkward}").into(),
            parent,
            depth: id as u32 % 3,
            file: "src/some file\\x.rs".into(),
            line: 4_000_000_000,
            polling: id % 2 == 0,
            for_us: u64::MAX,
            polls: 12_345,
            busy_us: 0,
            long_idle: id % 2 == 1,
            spans,
        };
        TaskTree {
            tasks: vec![
                task(1, None, 0..2),
                task(2, Some(1), 0..0),
                task(7, Some(99), 2..3),
            ],
            spans: vec![
                SpanEntry {
                    what: "outer".into(),
                    depth: 0,
                    leaf: false,
                },
                SpanEntry {
                    what: awkward.clone().into(),
                    depth: 1,
                    leaf: true,
                },
                SpanEntry {
                    what: "".into(),
                    depth: 0,
                    leaf: true,
                },
            ],
        }
    }

    #[test]
    fn json_is_what_serde_json_writes() {
        let tree = tree_with_every_field_set();
        assert_eq!(json(&tree), serde_json::to_string(&tree).unwrap());
        let back: TaskTree = serde_json::from_str(&json(&tree)).unwrap();
        assert_eq!(back, tree);
        let no_spans = TaskTree {
            tasks: tree.tasks[1..2].to_vec(),
            spans: Vec::new(),
        };
        assert_eq!(json(&no_spans), serde_json::to_string(&no_spans).unwrap());
        let empty = TaskTree::default();
        assert_eq!(json(&empty), serde_json::to_string(&empty).unwrap());
    }

    #[test]
    fn every_single_character_escapes_as_serde_json_does() {
        for c in (0u32..0x800).filter_map(char::from_u32) {
            let s = c.to_string();
            assert_eq!(
                written(|out| out.string(&s)),
                serde_json::to_string(&s).unwrap(),
                "{c:?}"
            );
        }
    }
}
