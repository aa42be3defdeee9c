#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| (ser::fuzz_targets::by_name("uri").expect("target"))(data));
