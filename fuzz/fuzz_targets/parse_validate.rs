//! `cargo fuzz run parse_validate`: job file bytes through parse, validate, plan and every
//! renderer. Any panic is a finding.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    pbibatch_fuzz::parse_and_validate(data);
});
