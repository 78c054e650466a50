#![no_main]

#[path = "../harness.rs"]
mod harness;

#[global_allocator]
static ALLOC: harness::PeakAlloc = harness::PeakAlloc;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::decode_frame(data));
