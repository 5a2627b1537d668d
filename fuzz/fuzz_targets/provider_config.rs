//! `cargo fuzz run provider_config`: [`vk_fuzz_harness::config::load`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| vk_fuzz_harness::config::load(data));
