//! The text form of a [`TaskTree`], for people (tools read its JSON,
//! `serde_json` of the derived `Serialize`).
//!
//! Written with plain pushes into one `String`: `core::fmt` makes a dozen
//! small writes per line and formats integers through a generic padding
//! path, which made the text of 10k tasks three times slower.

use std::fmt;

use super::tree::{SpanEntry, TaskEntry, TaskTree, LONG_IDLE};

/// The tree as text: one line per task and per open span.
fn text(tree: &TaskTree) -> String {
    let mut out = String::with_capacity(text_size(tree));
    write_text(tree, &mut out, 0);
    out
}

/// About the room the text of `tree` takes: reserved once, so a 10k-task
/// dump is not copied as it grows.
fn text_size(tree: &TaskTree) -> usize {
    96 * (tree.tasks.len() + tree.spans.len())
}

/// Appends the text of `tree` to `out`, every line indented `indent`
/// levels more (a gathered dump nests each actor's tree).
fn write_text(tree: &TaskTree, out: &mut String, indent: usize) {
    let mut out = Out::new(out, indent);
    for task in &tree.tasks {
        out.task(task, tree.spans_of(task));
    }
}

impl TaskTree {
    /// The tree as text, one line per task and per open span, indented
    /// by nesting (what [`Display`](fmt::Display) prints).
    pub fn to_text(&self) -> String {
        text(self)
    }

    /// Appends the text form to `out`, every line indented `indent`
    /// levels more: a gathered dump nests each actor's tree without
    /// copying it line by line.
    pub(crate) fn write_text(&self, out: &mut String, indent: usize) {
        out.reserve(text_size(self));
        write_text(self, out, indent);
    }
}

impl fmt::Display for TaskTree {
    /// One line per task and per open span, indented by nesting.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_text())
    }
}

/// A buffer being written, and the extra indent of text lines. A
/// `String`, not bytes: what goes in is whole `&str`s, their pieces cut
/// at ASCII bytes, and ASCII digits, so there is nothing to validate at
/// the end (that pass over the 3 MiB of a 10k-task dump took 7% of it).
struct Out<'a> {
    buf: &'a mut String,
    indent: usize,
}

/// The decimal pairs `00` to `99`.
const PAIRS: &str = "0001020304050607080910111213141516171819\
    2021222324252627282930313233343536373839\
    4041424344454647484950515253545556575859\
    6061626364656667686970717273747576777879\
    8081828384858687888990919293949596979899";

impl<'a> Out<'a> {
    fn new(buf: &'a mut String, indent: usize) -> Self {
        Out { buf, indent }
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
}
