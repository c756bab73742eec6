//! Contact form bodies, JSON and form-encoded.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = domain::channels::form::parse(data, true);
    let _ = domain::channels::form::parse(data, false);
});
