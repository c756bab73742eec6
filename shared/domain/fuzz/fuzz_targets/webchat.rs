//! Web chat visitors' frames (message and upload) and the names and keys they carry.
#![no_main]

use domain::channels::webchat;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let ws = domain::WorkspaceId::parse("fuzz").expect("a valid workspace");
    let visitor = webchat::VisitorId::parse("v_01JDAB0000000000000000000Z").expect("a valid visitor");
    if let Ok(m) = webchat::parse_message(data, &ws, &visitor) {
        // Whatever passed names only this visitor's uploads.
        assert!(m.attachments.iter().all(|a| webchat::owns_upload(&ws, &visitor, &a.key)));
    }
    let _ = webchat::parse_upload(data);
    if let Ok(text) = std::str::from_utf8(data) {
        let name = webchat::safe_file_name(text);
        assert!(!name.contains('/') && !name.is_empty());
        let _ = webchat::VisitorId::parse(text);
        let _ = webchat::parse_key(text);
    }
});
