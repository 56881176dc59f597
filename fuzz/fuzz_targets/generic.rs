#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    tower_webhooks_fuzz::generic(data);
});
