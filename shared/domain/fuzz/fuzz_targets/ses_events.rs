//! SES bounce, complaint and delivery notifications.
#![no_main]

use libfuzzer_sys::fuzz_target;

fn at() -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp(1_795_341_600).expect("a valid instant")
}

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = domain::channels::email::ses_feedback(text, at());
    }
});
