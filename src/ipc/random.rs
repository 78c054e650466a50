//! Random ids and secrets from the kernel: the per-tree token, actor
//! uuids, socket directory tags.

use std::io::{self, Read};

/// Fills `buf` from the kernel's random source.
pub(crate) fn random_bytes(buf: &mut [u8]) -> io::Result<()> {
    std::fs::File::open("/dev/urandom")?.read_exact(buf)
}

/// `n` random bytes as lowercase hex.
fn random_hex(n: usize) -> io::Result<String> {
    let mut bytes = vec![0u8; n];
    random_bytes(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// A fresh per-tree secret: 128 random bits, hex.
pub(crate) fn new_token() -> io::Result<String> {
    random_hex(16)
}

/// A fresh actor id: a random (version 4 layout) UUID.
pub(crate) fn new_uuid() -> io::Result<String> {
    let h = random_hex(16)?;
    Ok(format!(
        "{}-{}-4{}-a{}-{}",
        &h[..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..32]
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_and_uuids_are_fresh_and_well_formed() {
        let (a, b) = (new_token().unwrap(), new_token().unwrap());
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
        let uuid = new_uuid().unwrap();
        let parts: Vec<_> = uuid.split('-').map(str::len).collect();
        assert_eq!(parts, [8, 4, 4, 4, 12]);
    }
}
