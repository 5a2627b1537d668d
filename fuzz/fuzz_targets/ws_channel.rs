//! `cargo fuzz run ws_channel`: [`vk_fuzz_harness::ws::channel_messages`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| vk_fuzz_harness::ws::channel_messages(data));
