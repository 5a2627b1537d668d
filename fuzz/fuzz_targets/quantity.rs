//! `cargo fuzz run quantity`: [`vk_fuzz_harness::quantity::parse`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| vk_fuzz_harness::quantity::parse(data));
