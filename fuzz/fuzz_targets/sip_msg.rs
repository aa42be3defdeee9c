#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| (ser::fuzz_targets::by_name("sip_msg").expect("target"))(data));
