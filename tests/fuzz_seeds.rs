//! Replays the committed fuzz seeds (`fuzz/seeds/<target>/`) through the
//! same harness the cargo-fuzz targets run, so that the stable toolchain
//! and CI cover both targets.

#[path = "../fuzz/harness.rs"]
mod harness;

use std::path::Path;

#[global_allocator]
static ALLOC: harness::PeakAlloc = harness::PeakAlloc;

fn replay(target: &str, run: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/seeds")
        .join(target);
    let mut seeds: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .collect();
    seeds.sort();
    assert!(seeds.len() >= 10, "{target}: only {} seeds", seeds.len());
    for seed in &seeds {
        let data = std::fs::read(seed).unwrap();
        if let Err(panic) = std::panic::catch_unwind(|| run(&data)) {
            panic!("{target} failed on seed {}: {panic:?}", seed.display());
        }
    }
}

#[test]
fn decode_frame_seeds() {
    replay("decode_frame", harness::decode_frame);
}

#[test]
fn codec_race_seeds() {
    replay("codec_race", harness::codec_race);
}

/// The allocation bound that `decode_frame` asserts is not vacuous: the
/// tracker sees real allocations, and a prefix claiming 4 GiB is refused
/// without one of that size.
#[test]
fn allocation_tracker_is_live() {
    let seen = harness::largest_alloc_during(|| {
        std::hint::black_box(vec![0u8; 100_000]);
    });
    assert!(seen >= 100_000, "tracker saw {seen}");
    let claims_4gib = [0xff, 0xff, 0xff, 0xff, 0xa0];
    let codec = smol_devx::codec::Codec::default();
    let seen = harness::largest_alloc_during(|| {
        let mut buf = Vec::new();
        let got = smol::block_on(codec.read_msg(&mut &claims_4gib[..], &mut buf));
        assert!(matches!(
            got,
            Err(smol_devx::codec::CodecError::Oversize { .. })
        ));
    });
    assert!(
        seen < 4096,
        "an allocation of {seen} bytes for a refused frame"
    );
}

#[test]
fn repl_input_seeds() {
    replay("repl_input", harness::repl_input);
}
