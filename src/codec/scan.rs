//! A structural pass over one CBOR value, before serde sees it.
//!
//! It walks item heads iteratively (no recursion, so hostile nesting costs
//! a counter, not a stack frame) and finds: where the value ends (so that
//! trailing bytes are refused), whether it is cut short and by how much,
//! whether it nests deeper than the limit, and malformed heads. After it,
//! ciborium only has to map a value that is known to be complete and
//! shallow, which lets the codec use ciborium's small-scratch entry point
//! instead of the one that zeroes a 4 KiB buffer per call (55 % of decode
//! time by callgrind).

use super::CodecError;

/// `Open::left` of an indefinite-length array or map.
const UNTIL_BREAK: u64 = u64::MAX;
/// `Open::left` of an indefinite-length byte or text string: its chunks
/// must have this major type (2 or 3), subtracted from `UNTIL_BREAK`.
const fn chunks_of(major: u8) -> u64 {
    UNTIL_BREAK - 1 - major as u64
}

/// Open containers, each as the count of items it still expects (definite
/// counts are below the input length, so they never meet the markers
/// above). The first levels live on the stack: most values never spill.
struct Stack {
    inline: [u64; 16],
    len: usize,
    spill: Vec<u64>,
}

impl Stack {
    fn new() -> Self {
        Self {
            inline: [0; 16],
            len: 0,
            spill: Vec::new(),
        }
    }
    fn depth(&self) -> usize {
        self.len + self.spill.len()
    }
    fn push(&mut self, left: u64) {
        if self.len < self.inline.len() {
            self.inline[self.len] = left;
            self.len += 1;
        } else {
            self.spill.push(left);
        }
    }
    fn pop(&mut self) -> Option<u64> {
        if let Some(left) = self.spill.pop() {
            return Some(left);
        }
        self.len = self.len.checked_sub(1)?;
        Some(self.inline[self.len])
    }
    fn top(&mut self) -> Option<&mut u64> {
        match self.spill.last_mut() {
            Some(top) => Some(top),
            None => self.inline[..self.len].last_mut(),
        }
    }
}

/// Returns the length of the CBOR value at the start of `bytes`.
pub(crate) fn value_len(bytes: &[u8], max_depth: usize) -> Result<usize, CodecError> {
    let truncated = |needed: u64| CodecError::Truncated {
        needed: usize::try_from(needed).unwrap_or(usize::MAX),
        got: bytes.len(),
    };
    let malformed = |at: usize, reason: &str| CodecError::Malformed {
        offset: Some(at),
        reason: reason.to_owned(),
    };
    let mut stack = Stack::new();
    let mut pos = 0usize;
    loop {
        let at = pos;
        let &first = bytes.get(pos).ok_or_else(|| truncated(pos as u64 + 1))?;
        pos += 1;
        let (major, info) = (first >> 5, first & 0x1f);
        let arg = match info {
            0..=23 => Some(u64::from(info)),
            24..=27 => {
                let n = 1usize << (info - 24);
                let raw = bytes
                    .get(pos..pos + n)
                    .ok_or_else(|| truncated((pos + n) as u64))?;
                pos += n;
                Some(raw.iter().fold(0u64, |acc, &b| acc << 8 | u64::from(b)))
            }
            31 => None,
            _ => return Err(malformed(at, "reserved additional information")),
        };
        if let Some(&mut top) = stack.top() {
            let in_string = top == chunks_of(2) || top == chunks_of(3);
            if in_string && first != 0xff && (top != chunks_of(major) || arg.is_none()) {
                return Err(malformed(at, "bad chunk in an indefinite-length string"));
            }
        }
        // Each item takes at least one byte: a count beyond what is left
        // can only be cut short (and stays clear of the markers).
        let items = |count: u64| {
            let left = (bytes.len() - pos) as u64;
            if count > left {
                Err(truncated((pos as u64).saturating_add(count)))
            } else {
                Ok(count)
            }
        };
        // What this head opened, as the items it expects.
        let opened = match (major, arg) {
            (0 | 1 | 7, Some(_)) => None,
            (2 | 3, Some(len)) => {
                let end = (pos as u64).saturating_add(len);
                if end > bytes.len() as u64 {
                    return Err(truncated(end));
                }
                pos = end as usize;
                None
            }
            (2 | 3, None) => Some(chunks_of(major)),
            (4, Some(count)) => Some(items(count)?),
            (5, Some(pairs)) => Some(items(pairs.saturating_mul(2))?),
            (4 | 5, None) => Some(UNTIL_BREAK),
            // A tag wraps exactly one item.
            (6, Some(_)) => Some(1),
            (7, None) => match stack.pop() {
                Some(top) if top >= chunks_of(3) => None,
                _ => return Err(malformed(at, "unexpected break")),
            },
            _ => return Err(malformed(at, "indefinite length on a type without one")),
        };
        if let Some(left) = opened.filter(|&left| left > 0) {
            if stack.depth() >= max_depth {
                return Err(CodecError::TooDeep { limit: max_depth });
            }
            stack.push(left);
            continue;
        }
        // One item is complete (a scalar, a string, an empty or a closed
        // container): count it, closing the containers it fills.
        loop {
            match stack.top() {
                None => return Ok(pos),
                Some(left) if *left >= chunks_of(3) => break,
                Some(left) => {
                    *left -= 1;
                    if *left > 0 {
                        break;
                    }
                    stack.pop();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn len(bytes: &[u8]) -> Result<usize, CodecError> {
        value_len(bytes, 4)
    }

    #[test]
    fn finds_the_end_of_every_kind_of_value() {
        assert_eq!(len(&[0x00, 0xff]).unwrap(), 1); // 0, then junk
        assert_eq!(len(&[0x19, 0x01, 0x00]).unwrap(), 3); // u16
        assert_eq!(len(&[0x63, b'a', b'b', b'c']).unwrap(), 4); // "abc"
        assert_eq!(len(&[0x80]).unwrap(), 1); // []
        assert_eq!(len(&[0xa0]).unwrap(), 1); // {}
        assert_eq!(len(&[0x82, 0x01, 0x81, 0x02]).unwrap(), 4); // [1, [2]]
        assert_eq!(len(&[0xa1, 0x61, b'k', 0xf5]).unwrap(), 4); // {"k": true}
        assert_eq!(len(&[0x9f, 0x01, 0x80, 0xff]).unwrap(), 4); // [_ 1, []]
        assert_eq!(len(&[0x7f, 0x61, b'a', 0x60, 0xff]).unwrap(), 5); // (_ "a", "")
        assert_eq!(len(&[0xc1, 0x1a, 0, 0, 0, 1]).unwrap(), 6); // 1(1)
        assert_eq!(len(&[0xfb, 0, 0, 0, 0, 0, 0, 0, 0]).unwrap(), 9); // 0.0f64
    }

    #[test]
    fn says_how_much_a_cut_value_needs() {
        let err = len(&[0x63, b'a']).unwrap_err();
        assert!(
            matches!(err, CodecError::Truncated { needed: 4, got: 2 }),
            "{err}"
        );
        let err = len(&[0x82, 0x01]).unwrap_err();
        assert!(
            matches!(err, CodecError::Truncated { needed: 3, got: 2 }),
            "{err}"
        );
        let err = len(&[0x1b, 0, 0]).unwrap_err();
        assert!(
            matches!(err, CodecError::Truncated { needed: 9, .. }),
            "{err}"
        );
        // A byte string claiming 2^64-1 bytes: no overflow, no allocation.
        let mut huge = vec![0x5b];
        huge.extend_from_slice(&[0xff; 8]);
        assert!(matches!(len(&huge), Err(CodecError::Truncated { .. })));
        assert!(matches!(
            len(&[]),
            Err(CodecError::Truncated { needed: 1, got: 0 })
        ));
    }

    #[test]
    fn bounds_nesting_without_recursing() {
        assert_eq!(len(&[0x81, 0x81, 0x81, 0x81, 0x00]).unwrap(), 5);
        let err = len(&[0x81, 0x81, 0x81, 0x81, 0x81, 0x00]).unwrap_err();
        assert!(matches!(err, CodecError::TooDeep { limit: 4 }), "{err}");
        // Tags count as nesting: a million of them cost a counter, once.
        let mut tags = vec![0xc1; 1_000_000];
        tags.push(0x00);
        assert!(matches!(len(&tags), Err(CodecError::TooDeep { .. })));
    }

    #[test]
    fn refuses_malformed_heads() {
        for bad in [
            &[0x1c][..],               // reserved additional info
            &[0xff],                   // break outside a container
            &[0x81, 0xff],             // break inside a definite array
            &[0x1f],                   // indefinite integer
            &[0xdf, 0x00],             // indefinite tag
            &[0x7f, 0x01, 0xff],       // integer chunk in a text string
            &[0x5f, 0x7f, 0xff, 0xff], // nested indefinite chunk
        ] {
            let err = len(bad).unwrap_err();
            assert!(
                matches!(err, CodecError::Malformed { .. }),
                "{bad:x?}: {err}"
            );
        }
    }
}
