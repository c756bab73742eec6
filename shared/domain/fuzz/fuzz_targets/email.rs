//! Raw MIME messages (SES receipt), with quote and signature cutting.
#![no_main]

use libfuzzer_sys::fuzz_target;

fn at() -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp(1_795_341_600).expect("a valid instant")
}

fuzz_target!(|data: &[u8]| {
    let _ = domain::channels::email::parse(data, "support@acme.example", at());
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = domain::channels::quotes::reply_text(text);
    }
});
