//! `cargo fuzz run spdy_frames`: [`vk_fuzz_harness::spdy::frames`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| vk_fuzz_harness::spdy::frames(data));
