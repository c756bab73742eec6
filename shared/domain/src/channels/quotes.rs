//! What the customer actually wrote in an email reply: the quoted history and the signature are
//! cut, the way mail clients lay them out in many languages; what a forward forwards is kept (it is
//! new to us), and text with nothing quoted comes back whole.
//!
//! How a line is judged (after studying how mailgun's talon and similar libraries decide, and a
//! fixture set of real client formats in `events/email-replies/`):
//! - **Quoted lines** (`>`) are dropped wherever they are; the customer's text between and below
//!   them is kept (inline and bottom-posted answers).
//! - **An attribution** ("On … wrote:", "Le … a écrit :", "Am … schrieb …:", "… 写道：", a date-first
//!   "2017-11-24 16:32 GMT+01:00 Name <a@b>:" with no verb), possibly wrapped over up to three
//!   lines, is dropped; when what follows is not `>`-quoted (a client that quotes without `>`),
//!   everything from it on is history and cut. A wrapped attribution must begin on a line that
//!   can start one (an opener word, a date, a name with an address), so the customer's own line
//!   above an attribution is never swallowed.
//! - **An Outlook header block** (From/Sent/To/Subject, localised), **an "original message"
//!   separator** (localised, or any `--- words ---` line, or a long underscore rule): everything
//!   from it on is history.
//! - **A signature** is cut: the RFC 3676 delimiter near the end, or a phone's "Sent from my …" line
//!   (in many forms and languages).
//!
//! HTML-only mail has its quote containers (blockquote, gmail_quote, divRplyFwdMsg and what follows
//! it, moz-cite-prefix, yahoo_quoted) removed before it is reduced to text (`email::parse`).
//! The full original stays in S3 with the raw message, linked from the message's metadata.

/// Lines that start a forwarded message: everything below is kept.
const FORWARD_MARKERS: [&str; 8] = [
    "---------- forwarded message ---------",
    "begin forwarded message:",
    "-------- forwarded message --------",
    "----- forwarded message -----",
    "---------- weitergeleitete nachricht ---------",
    "-------- message transféré --------",
    "---------- mensaje reenviado ----------",
    "---------- messaggio inoltrato ---------",
];

/// "Original message" separators, lower case, without their dashes.
const ORIGINAL_MESSAGE: [&str; 14] = [
    "original message",
    "ursprüngliche nachricht",
    "message d'origine",
    "message d’origine",
    "mensaje original",
    "messaggio originale",
    "oorspronkelijk bericht",
    "opprinnelig melding",
    "oprindelig meddelelse",
    "originalmeddelande",
    "oryginalna wiadomość",
    "исходное сообщение",
    "alkuperäinen viesti",
    "mensagem original",
];

/// The verbs of attribution lines, lower case ("wrote", "a écrit", "schrieb", …).
const ATTRIBUTION_VERBS: [&str; 28] = [
    "wrote",
    "a écrit",
    "schrieb",
    "escribió",
    "ha scritto",
    "schreef",
    "geschreven",
    "napisał",
    "napisała",
    "pisze",
    "пише",
    "skrev",
    "escreveu",
    "kirjoitti",
    "написал",
    "написала",
    "写道",
    "寫道",
    "님이 작성",
    "yazdı",
    "napsal",
    "írta",
    "a scris",
    "έγραψε",
    "skrifaði",
    "rakstīja",
    "написа",
    "kirjutas",
];

/// Words an attribution line starts with ("On", "Le", "Am", "El", "Il giorno", "Op", "Den",
/// "W dniu", "Em", "在"…), lower case; dates and weekdays are recognised separately.
const ATTRIBUTION_OPENERS: [&str; 16] = [
    "on ", "le ", "am ", "el ", "il ", "op ", "den ", "w dniu ", "em ", "dne ", "в ", "在", "於", "el día ", "på ",
    "pada ",
];

/// Outlook header keys by role, lower case, without the colon.
const FROM_KEYS: [&str; 16] = [
    "from",
    "von",
    "de",
    "fra",
    "van",
    "da",
    "från",
    "od",
    "от",
    "lähettäjä",
    "kimden",
    "差出人",
    "发件人",
    "寄件者",
    "feladó",
    "afsender",
];
const SENT_KEYS: [&str; 19] = [
    "sent",
    "date",
    "gesendet",
    "datum",
    "envoyé",
    "date d'envoi",
    "enviado",
    "fecha",
    "sendt",
    "verzonden",
    "verstuurd",
    "inviato",
    "data",
    "skickat",
    "wysłano",
    "отправлено",
    "lähetetty",
    "送信日時",
    "发送时间",
];
const TO_KEYS: [&str; 26] = [
    "to",
    "an",
    "à",
    "a",
    "para",
    "til",
    "aan",
    "till",
    "do",
    "кому",
    "vastaanottaja",
    "宛先",
    "收件人",
    "subject",
    "betreff",
    "objet",
    "asunto",
    "emne",
    "onderwerp",
    "oggetto",
    "ämne",
    "temat",
    "тема",
    "aihe",
    "件名",
    "主题",
];

/// Phone and client sign-offs that stand alone on a line, lower case prefixes.
const CLIENT_SIGNATURES: [&str; 21] = [
    "sent from my ",
    "sent from outlook",
    "sent from mail for windows",
    "sent from yahoo mail",
    "sent with proton mail",
    "get outlook for ",
    "von meinem ",
    "gesendet von ",
    "enviado desde mi ",
    "enviado do meu ",
    "envoyé de mon ",
    "envoyé depuis mon ",
    "inviato da ",
    "verstuurd vanaf mijn ",
    "verzonden vanaf mijn ",
    "skickat från min ",
    "sendt fra min ",
    "wysłane z ",
    "отправлено с ",
    "发自我的",
    "iphoneから送信",
];

fn is_quoted(line: &str) -> bool {
    line.trim_start().starts_with('>')
}

fn lower(line: &str) -> String {
    line.trim().trim_matches('*').trim().to_lowercase()
}

/// Whether `text` (one line, or a wrapped attribution joined) reads as an attribution.
fn attribution_text(text: &str) -> bool {
    let l = text.trim().to_lowercase();
    let ends = l.ends_with(':') || l.ends_with('：');
    if !ends {
        return false;
    }
    let has_digit = l.chars().any(|c| c.is_ascii_digit() || ('０'..='９').contains(&c));
    let has_address = l.contains('@');
    let verb = ATTRIBUTION_VERBS.iter().any(|v| l.contains(v));
    // "On … wrote:", "Le … a écrit :": a verb, and a date or an address.
    if verb && (has_digit || has_address) {
        return true;
    }
    // Verbless: "2017-11-24 16:32 GMT+01:00 Name <a@b>:", "вт, 3 мар. 2026 г. в 10:02, Name <a@b>:".
    has_digit && l.contains('<') && has_address && l.trim_end_matches([':', '：']).trim_end().ends_with('>')
}

/// Whether a line can begin an attribution: an opener word, a date or weekday first, or a name
/// followed by an address.
fn opens_attribution(line: &str) -> bool {
    let l = line.trim().trim_start_matches('>').trim_start().to_lowercase();
    if ATTRIBUTION_OPENERS.iter().any(|o| l.starts_with(o)) {
        return true;
    }
    let first = l.split_whitespace().next().unwrap_or_default();
    // A date ("2017-11-24", "24.11.2017", "3/3/26", "2026年3月3日") or a short weekday ("ti", "вт,", "tir.").
    first.chars().next().is_some_and(|c| c.is_ascii_digit())
        || (first.trim_end_matches([',', '.']).chars().count() <= 4
            && first.trim_end_matches([',', '.']).chars().all(char::is_alphabetic)
            && l.chars().any(|c| c.is_ascii_digit()))
        || l.contains('<') && l.contains('@')
}

/// An attribution starting at line `i`, possibly wrapped over up to three lines: how many lines.
fn attribution(lines: &[&str], i: usize) -> Option<usize> {
    if lines[i].trim().is_empty() || is_quoted(lines[i]) {
        return None;
    }
    if attribution_text(lines[i]) && opens_attribution(lines[i]) {
        return Some(1);
    }
    if !opens_attribution(lines[i]) {
        return None;
    }
    let mut joined = lines[i].trim().to_owned();
    for k in 1..3 {
        let Some(next) = lines.get(i + k) else { break };
        if next.trim().is_empty() || is_quoted(next) {
            break;
        }
        // A later line that is an attribution on its own starts it; this line is the customer's.
        if attribution_text(next) && opens_attribution(next) {
            return None;
        }
        joined.push(' ');
        joined.push_str(next.trim());
        if attribution_text(&joined) {
            return Some(k + 1);
        }
    }
    None
}

/// Outlook's header block: a From line followed within a few lines by a Sent/Date line and a
/// To/Subject line, in any of the languages above (`*From:*` as HTML bold becomes, too).
fn outlook_header_block(lines: &[&str], i: usize) -> bool {
    let key = |l: &str| -> Option<String> {
        let l = lower(l);
        let (k, _) = l.split_once([':', '：'])?;
        let k = k.trim().trim_matches('*').trim();
        (k.chars().count() <= 20).then(|| k.to_owned())
    };
    let Some(first) = key(lines[i]) else { return false };
    if !FROM_KEYS.contains(&first.as_str()) {
        return false;
    }
    let next: Vec<String> = lines[i + 1..].iter().take(6).filter_map(|l| key(l)).collect();
    next.iter().any(|k| SENT_KEYS.contains(&k.as_str())) && next.iter().any(|k| TO_KEYS.contains(&k.as_str()))
}

/// "-----Original Message-----" in any language, any "--- words ---" line, or a long rule.
fn separator(line: &str) -> bool {
    let l = lower(line);
    if l.chars().count() >= 20 && l.chars().all(|c| c == '_') {
        return true;
    }
    let inner = l.trim_matches(|c: char| c == '-' || c.is_whitespace());
    let dashed = l.starts_with("--") && l.ends_with("--") && inner.len() < l.len();
    if dashed && !inner.is_empty() && inner.chars().all(|c| c.is_alphabetic() || " '’#.".contains(c)) {
        return true;
    }
    ORIGINAL_MESSAGE.contains(&inner)
}

/// The customer's own text of an email body (plain text, or HTML already reduced to text).
pub fn reply_text(body: &str) -> String {
    let body = body.replace("\r\n", "\n");
    let lines: Vec<&str> = body.lines().collect();
    let mut own: Vec<&str> = Vec::with_capacity(lines.len());
    let mut forwarded: Option<&[&str]> = None;
    let mut i = 0;
    while i < lines.len() {
        let l = lower(lines[i]);
        if FORWARD_MARKERS.iter().any(|m| l.starts_with(m)) {
            forwarded = Some(&lines[i..]);
            break;
        }
        if is_quoted(lines[i]) {
            i += 1;
            continue;
        }
        if let Some(span) = attribution(&lines, i) {
            let rest = lines[i + span..].iter().find(|l| !l.trim().is_empty());
            if rest.is_some_and(|l| is_quoted(l)) {
                // "On … wrote:" above `>` lines: the quotes go line by line, answers below stay.
                i += span;
                continue;
            }
            break;
        }
        if separator(lines[i]) || outlook_header_block(&lines, i) {
            break;
        }
        own.push(lines[i]);
        i += 1;
    }
    let own = strip_signature(&own);
    let mut out = squeeze_blank_lines(own).trim().to_owned();
    if let Some(fwd) = forwarded {
        if !out.is_empty() {
            out.push_str("\n\n");
        }
        out.push_str(fwd.join("\n").trim());
    }
    out
}

/// The lines joined, with runs of blank lines (left where quotes were dropped) made one.
fn squeeze_blank_lines(lines: &[&str]) -> String {
    let mut out: Vec<&str> = Vec::with_capacity(lines.len());
    for l in lines {
        if l.trim().is_empty() && out.last().is_some_and(|p: &&str| p.trim().is_empty()) {
            continue;
        }
        out.push(l);
    }
    out.join("\n")
}

/// Cuts the signature: everything from the RFC 3676 delimiter ("-- ") or a client's "Sent from my
/// iPhone" line, when it is in the last part of the text.
fn strip_signature<'a>(lines: &'a [&'a str]) -> &'a [&'a str] {
    let mut end = lines.len();
    for (i, l) in lines.iter().enumerate().rev() {
        let lower = l.trim().to_lowercase();
        // "-- " (RFC 3676), or "--" once a client has eaten the trailing space.
        if l.trim_end() == "--" {
            // A signature is short; a "--" far above the end is a divider in the text.
            if lines.len() - i <= 12 {
                end = i;
            }
            break;
        }
        if lower.chars().count() <= 60 && CLIENT_SIGNATURES.iter().any(|s| lower.starts_with(s)) {
            end = end.min(i);
        }
    }
    let mut own = &lines[..end];
    while own.last().is_some_and(|l| l.trim().is_empty()) {
        own = &own[..own.len() - 1];
    }
    own
}

/// The customer's own text of an HTML-only body: the clients' quote containers — blockquotes,
/// Gmail's `gmail_quote`, Thunderbird's `moz-cite-prefix`, Yahoo's `yahoo_quoted`, and Outlook's
/// `divRplyFwdMsg` / `appendonsend` with everything after them — are removed, then the rest is
/// reduced to text and read like a plain-text body.
pub fn html_reply_text(html: &str) -> String {
    reply_text(&mail_parser::decoders::html::html_to_text(&strip_html_quotes(html)))
}

/// `html` without its quoted history (see [`html_reply_text`]); unparseable HTML is left as it is.
pub fn strip_html_quotes(html: &str) -> String {
    use lol_html::{element, rewrite_str, text, RewriteStrSettings};
    use std::cell::Cell;
    // Outlook puts the quoted message after its header block, as siblings: once the block is
    // seen, everything that follows goes.
    let history = Cell::new(false);
    let settings = RewriteStrSettings {
        element_content_handlers: vec![
            element!("blockquote, .gmail_quote, .moz-cite-prefix, .yahoo_quoted, [id^=yahoo_quoted]", |el| {
                el.remove();
                Ok(())
            }),
            element!("#divRplyFwdMsg, #appendonsend", |el| {
                history.set(true);
                el.remove();
                Ok(())
            }),
            element!("*", |el| {
                if history.get() {
                    el.remove();
                }
                Ok(())
            }),
            text!("*", |t| {
                if history.get() {
                    t.remove();
                }
                Ok(())
            }),
        ],
        ..RewriteStrSettings::new()
    };
    rewrite_str(html, settings).unwrap_or_else(|_| html.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gmail_reply_keeps_only_the_new_text() {
        let body = "Yes, Thursday works.\n\nThanks,\nAnn\n\nOn Tue, Mar 3, 2026 at 10:02 AM Acme Support <support@acme.example> wrote:\n> Can we call on Thursday?\n>\n> Best,\n> Acme\n";
        assert_eq!(reply_text(body), "Yes, Thursday works.\n\nThanks,\nAnn");
    }

    #[test]
    fn gmail_attribution_wrapped_over_two_lines() {
        let body =
            "Sounds good\n\nOn Tue, Mar 3, 2026 at 10:02 AM Acme Support <\nsupport@acme.example> wrote:\n\n> old\n";
        assert_eq!(reply_text(body), "Sounds good");
    }

    #[test]
    fn outlook_header_block_and_separator() {
        let body = "Please cancel the order.\r\n\r\nRegards\r\nBob\r\n\r\n________________________________\r\nFrom: Acme Support <support@acme.example>\r\nSent: Tuesday, March 3, 2026 10:02 AM\r\nTo: Bob <bob@example.com>\r\nSubject: RE: Order 1234\r\n\r\nHello Bob\r\n";
        assert_eq!(reply_text(body), "Please cancel the order.\n\nRegards\nBob");
        let classic = "Fine by me.\n\n-----Original Message-----\nFrom: support@acme.example\nSent: Tuesday\n";
        assert_eq!(reply_text(classic), "Fine by me.");
        let no_separator = "Ok\n\nFrom: Acme <support@acme.example>\nDate: Tue, 3 Mar\nSubject: Re: x\n\nold";
        assert_eq!(reply_text(no_separator), "Ok");
    }

    #[test]
    fn apple_mail_and_mobile_signature() {
        let body = "Got it, thanks!\n\nSent from my iPhone\n\n> On 3 Mar 2026, at 10:02, Acme Support <support@acme.example> wrote:\n> \n> Your parcel left.\n";
        assert_eq!(reply_text(body), "Got it, thanks!");
    }

    #[test]
    fn signature_delimiter_is_cut_but_a_far_divider_is_not() {
        assert_eq!(
            reply_text("Hello\nwhere is my parcel?\n\n-- \nAnn Lee\nCEO, Example Ltd\n"),
            "Hello\nwhere is my parcel?"
        );
        let long: String =
            std::iter::once("Intro\n--\n".to_owned()).chain((0..20).map(|i| format!("point {i}\n"))).collect();
        assert_eq!(reply_text(&long), long.trim());
    }

    #[test]
    fn forwards_keep_what_they_forward() {
        let body = "See below, this is what I got.\n\n---------- Forwarded message ---------\nFrom: Shop <no-reply@shop.example>\nDate: Mon, 2 Mar 2026\nSubject: Your order\n\nOrder 1234 is delayed.\n";
        let text = reply_text(body);
        assert!(text.starts_with("See below, this is what I got."));
        assert!(text.contains("Order 1234 is delayed."), "{text}");
        let apple = "FYI\n\nBegin forwarded message:\n\nFrom: Shop <no-reply@shop.example>\nSubject: Invoice\n\nAmount due: 10 EUR\n";
        assert!(reply_text(apple).contains("Amount due: 10 EUR"));
    }

    #[test]
    fn inline_replies_and_other_languages() {
        let inline = "> Which size?\nMedium please.\n> Which colour?\nBlue.\n";
        assert_eq!(reply_text(inline), "Medium please.\nBlue.", "the answers stay, the quotes go");
        assert_eq!(
            reply_text("Merci !\n\nLe mar. 3 mars 2026 à 10:02, Acme <support@acme.example> a écrit :\n> x"),
            "Merci !"
        );
        assert_eq!(
            reply_text("Danke\n\nAm Di., 3. März 2026 um 10:02 Uhr schrieb Acme <s@acme.example>:\n> x"),
            "Danke"
        );
    }

    /// Every fixture in `events/email-replies/`: a body (`.txt` plain text, `.html` an HTML-only
    /// body, reduced as `email::parse` does) and the reply text expected from it.
    #[test]
    fn the_fixture_set_of_real_client_formats() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../events/email-replies");
        let mut checked = 0;
        let mut failures = vec![];
        let mut entries: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
        entries.sort();
        for path in entries {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let Some(stem) = name.strip_suffix(".txt").or(name.strip_suffix(".html")) else { continue };
            if stem.ends_with(".reply") {
                continue;
            }
            let body = std::fs::read_to_string(&path).unwrap();
            let expected = std::fs::read_to_string(dir.join(format!("{stem}.reply.txt"))).unwrap();
            let got = if name.ends_with(".html") { html_reply_text(&body) } else { reply_text(&body) };
            if got != expected.trim() {
                failures.push(format!("{name}:\n  expected {:?}\n  got      {got:?}", expected.trim()));
            }
            checked += 1;
        }
        assert!(checked >= 60, "only {checked} fixtures found in {}", dir.display());
        assert!(failures.is_empty(), "{} of {checked} fixtures failed:\n{}", failures.len(), failures.join("\n"));
    }

    proptest::proptest! {
        /// Text with nothing quoted comes back whole: ordinary sentences, no attribution, no
        /// separator, no signature.
        #[test]
        fn text_with_nothing_quoted_comes_back_whole(
            lines in proptest::collection::vec("[A-Za-z][A-Za-z ,.!?]{0,60}", 1..12)
        ) {
            let body = lines.join("\n");
            let lower = body.to_lowercase();
            proptest::prop_assume!(!lower.contains("sent ") && !lower.contains("get outlook"));
            let whole = squeeze_blank_lines(&body.lines().collect::<Vec<_>>());
            proptest::prop_assert_eq!(reply_text(&body), whole.trim());
        }
    }

    #[test]
    fn a_message_without_history_is_unchanged() {
        assert_eq!(reply_text("Hi,\n\nmy order has not arrived.\n\nAnn"), "Hi,\n\nmy order has not arrived.\n\nAnn");
        assert_eq!(reply_text(""), "");
    }
}
