//! Twilio's SMS webhook form (and the status callback) parse or fail, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fn at() -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp(1_795_341_600).expect("a valid instant")
}

fuzz_target!(|data: &[u8]| {
    if let Ok(params) = domain::channels::twilio::parse_form(data) {
        let _ = domain::channels::twilio::parse_inbound(&params);
        let _ = domain::channels::twilio::parse_status_callback(&params, at());
    }
});
