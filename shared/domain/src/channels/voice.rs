//! Voicemail through Twilio Voice: the call webhook answers TwiML that plays a greeting and
//! records; the recording and transcription callbacks (signed like every Twilio webhook) become
//! one message of the caller, with the audio in S3 and the transcript as its text.
//!
//! - The caller is a phone identity: the same person on SMS, WhatsApp and voice is one contact.
//! - Both callbacks name the recording (`RecordingSid`): that is the message's id. Whichever
//!   arrives first creates the message; the other completes it ([`InboundMessage::completes`]):
//!   the transcript fills the text, the recording adds the audio. Twilio retries either safely.
//! - The callbacks carry no caller number, so the call webhook writes `from` and `to` into the
//!   callback URLs' query, which Twilio's signature covers.
//! - Replies to a voicemail go by SMS to the caller's number (the conversation's voice route,
//!   answered on the SMS channel).

use std::collections::BTreeMap;

use time::OffsetDateTime;

use super::ParsedMessage;
use crate::address::PhoneNumber;
use crate::error::ParseError;
use crate::events::InboundMessage;
use crate::finance::Usage;
use crate::ids::WorkspaceId;
use crate::model::{Attachment, Channel, Identity};

pub const PROVIDER: &str = "twilio-voice";
/// The longest voicemail, in seconds.
pub const MAX_RECORDING_SECS: u32 = 180;

fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()).filter(|v| !v.is_empty())
}

fn required<'a>(params: &'a [(String, String)], name: &'static str) -> Result<&'a str, ParseError> {
    param(params, name).ok_or(ParseError::Missing(name))
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&apos;")
}

/// An incoming call: who calls which of our numbers.
#[derive(Clone, Debug, PartialEq)]
pub struct Call {
    pub call_sid: String,
    pub from: PhoneNumber,
    pub to: PhoneNumber,
}

pub fn parse_call(params: &[(String, String)]) -> Result<Call, ParseError> {
    Ok(Call {
        call_sid: required(params, "CallSid")?.to_owned(),
        from: PhoneNumber::parse(required(params, "From")?)?,
        to: PhoneNumber::parse(required(params, "To")?)?,
    })
}

/// The TwiML that answers a call: the greeting, a beep, a recording with both callbacks (the
/// caller's and our number in their query), and a goodbye when the caller hangs up or goes quiet.
pub fn answer(greeting: &str, base_url: &str, call: &Call) -> String {
    let query = format!("?from={}&to={}", urlencode(call.from.as_str()), urlencode(call.to.as_str()));
    let base = base_url.trim_end_matches('/');
    let recording = escape(&format!("{base}/webhooks/twilio/voice/recording{query}"));
    let transcription = escape(&format!("{base}/webhooks/twilio/voice/transcription{query}"));
    let done = escape(&format!("{base}/webhooks/twilio/voice/done"));
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Say>{}</Say><Record action=\"{done}\" method=\"POST\" \
         maxLength=\"{MAX_RECORDING_SECS}\" playBeep=\"true\" timeout=\"5\" finishOnKey=\"#\" \
         recordingStatusCallback=\"{recording}\" recordingStatusCallbackEvent=\"completed\" transcribe=\"true\" \
         transcribeCallback=\"{transcription}\"/></Response>",
        escape(greeting)
    )
}

/// After the recording: thanks and hang up.
pub const GOODBYE: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Say>Thank you. We will get back to \
                           you soon. Goodbye.</Say><Hangup/></Response>";

/// When no workspace answers on the number.
pub const REJECT: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Reject/></Response>";

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// The caller and our number, from a callback URL's query.
pub fn parties(callback_url: &str) -> Result<(PhoneNumber, PhoneNumber), ParseError> {
    let url = url::Url::parse(callback_url)
        .map_err(|e| ParseError::Invalid { kind: "callback URL", reason: e.to_string() })?;
    let get = |name: &'static str| -> Result<PhoneNumber, ParseError> {
        let v =
            url.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned()).ok_or(ParseError::Missing(name))?;
        PhoneNumber::parse(&v)
    };
    Ok((get("from")?, get("to")?))
}

/// A finished recording (`RecordingStatus=completed`); `None` for another status (failed,
/// absent: nothing to keep).
#[derive(Clone, Debug, PartialEq)]
pub struct Recording {
    pub recording_sid: String,
    pub call_sid: String,
    /// Twilio's URL of the audio, without an extension (`.mp3` or `.wav` pick the format).
    pub url: String,
    pub duration_secs: Option<u32>,
}

pub fn parse_recording(params: &[(String, String)]) -> Result<Option<Recording>, ParseError> {
    if param(params, "RecordingStatus").is_some_and(|s| s != "completed") {
        return Ok(None);
    }
    let url = required(params, "RecordingUrl")?;
    if !url.starts_with("https://") && !url.starts_with("http://") {
        return Err(ParseError::Invalid { kind: "RecordingUrl", reason: "expected an http(s) URL".into() });
    }
    Ok(Some(Recording {
        recording_sid: required(params, "RecordingSid")?.to_owned(),
        call_sid: required(params, "CallSid")?.to_owned(),
        url: url.to_owned(),
        duration_secs: param(params, "RecordingDuration").and_then(|d| d.parse().ok()),
    }))
}

/// A transcript; `None` when transcription failed (the recording alone is the message).
#[derive(Clone, Debug, PartialEq)]
pub struct Transcript {
    pub recording_sid: String,
    pub call_sid: String,
    pub text: String,
}

pub fn parse_transcription(params: &[(String, String)]) -> Result<Option<Transcript>, ParseError> {
    if param(params, "TranscriptionStatus").is_some_and(|s| s != "completed") {
        return Ok(None);
    }
    let Some(text) = param(params, "TranscriptionText").map(str::trim).filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    Ok(Some(Transcript {
        recording_sid: required(params, "RecordingSid")?.to_owned(),
        call_sid: required(params, "CallSid")?.to_owned(),
        text: text.to_owned(),
    }))
}

/// The voicemail as an inbound message: created by the first callback, completed by the second.
#[allow(clippy::too_many_arguments)]
pub fn voicemail(
    workspace: WorkspaceId,
    from: &PhoneNumber,
    to: &PhoneNumber,
    recording_sid: &str,
    call_sid: &str,
    text: Option<String>,
    audio: Option<Attachment>,
    duration_secs: Option<u32>,
    received_at: OffsetDateTime,
    usage: Usage,
) -> InboundMessage {
    let mut metadata = BTreeMap::from([
        ("voicemail".to_owned(), serde_json::Value::Bool(true)),
        ("call_sid".to_owned(), serde_json::Value::from(call_sid)),
    ]);
    if let Some(d) = duration_secs {
        metadata.insert("voicemail_duration_secs".into(), serde_json::Value::from(d));
    }
    let mut m = ParsedMessage {
        channel: Channel::Voice,
        identity: Identity::phone(from),
        contact_address: from.as_str().to_owned(),
        contact_country: from.country(),
        our_address: to.as_str().to_owned(),
        contact_name: None,
        provider: PROVIDER,
        provider_message_id: recording_sid.to_owned(),
        text,
        attachments: audio.into_iter().collect(),
        rich: None,
        provider_timestamp: Some(received_at),
        metadata,
    }
    .into_inbound(workspace, received_at, usage);
    m.completes = true;
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn the_answer_records_with_both_callbacks_naming_the_parties() {
        let call = parse_call(&form(&[("CallSid", "CA1"), ("From", "+14155552671"), ("To", "+14155550100")])).unwrap();
        let twiml = answer("Thanks for calling Acme & Co. Leave a message.", "https://api.example/", &call);
        assert!(twiml.contains("<Say>Thanks for calling Acme &amp; Co. Leave a message.</Say>"), "{twiml}");
        assert!(twiml.contains(
            "recordingStatusCallback=\"https://api.example/webhooks/twilio/voice/recording?from=%2B14155552671&amp;to=%2B14155550100\""
        ));
        assert!(twiml.contains("transcribe=\"true\""));
        let (from, to) =
            parties("https://api.example/webhooks/twilio/voice/recording?from=%2B14155552671&to=%2B14155550100")
                .unwrap();
        assert_eq!((from.as_str(), to.as_str()), ("+14155552671", "+14155550100"));
        assert!(parties("https://api.example/webhooks/twilio/voice/recording").is_err());
        assert!(parse_call(&form(&[("CallSid", "CA1"), ("From", "anonymous"), ("To", "+14155550100")])).is_err());
    }

    #[test]
    fn callbacks_read_the_recording_and_the_transcript_or_nothing() {
        let rec = parse_recording(&form(&[
            ("RecordingSid", "RE1"),
            ("CallSid", "CA1"),
            ("RecordingStatus", "completed"),
            ("RecordingUrl", "https://api.twilio.com/2010-04-01/Accounts/AC1/Recordings/RE1"),
            ("RecordingDuration", "42"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!((rec.recording_sid.as_str(), rec.duration_secs), ("RE1", Some(42)));
        assert_eq!(parse_recording(&form(&[("RecordingStatus", "failed")])).unwrap(), None);
        let bad = form(&[("RecordingSid", "RE1"), ("CallSid", "CA1"), ("RecordingUrl", "file:///etc/passwd")]);
        assert!(parse_recording(&bad).is_err());
        let t = parse_transcription(&form(&[
            ("RecordingSid", "RE1"),
            ("CallSid", "CA1"),
            ("TranscriptionStatus", "completed"),
            ("TranscriptionText", " Hi, please call me back. "),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(t.text, "Hi, please call me back.");
        assert_eq!(parse_transcription(&form(&[("TranscriptionStatus", "failed")])).unwrap(), None);
    }
}
