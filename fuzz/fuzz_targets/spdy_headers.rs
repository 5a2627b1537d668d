//! `cargo fuzz run spdy_headers`: [`vk_fuzz_harness::spdy::header_blocks`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| vk_fuzz_harness::spdy::header_blocks(data));
