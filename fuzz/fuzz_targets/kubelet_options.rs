//! `cargo fuzz run kubelet_options`: [`vk_fuzz_harness::options::query`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| vk_fuzz_harness::options::query(data));
