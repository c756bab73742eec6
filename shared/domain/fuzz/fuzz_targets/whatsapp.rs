//! WhatsApp Cloud API webhook bodies.
#![no_main]

use libfuzzer_sys::fuzz_target;

fn at() -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp(1_795_341_600).expect("a valid instant")
}

fuzz_target!(|data: &[u8]| {
    let _ = domain::channels::whatsapp::parse(data, at());
});
