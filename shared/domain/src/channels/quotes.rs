//! What the customer actually wrote in an email reply: the quoted history below it and the
//! signature under it are cut, the way Gmail, Outlook, Apple Mail and their mobile apps lay
//! them out. A forward keeps what it forwards (that is new to us); only its own signature goes.
//!
//! Decisions: we cut at the first line that starts a quote block (an attribution line such as
//! "On … wrote:", an Outlook header block or separator, or a run of `>` lines); a `>` line in the
//! middle of the customer's text followed by more of their own text is kept (inline replies).
//! The full original stays in S3 with the raw message, linked from the message's metadata.

/// Separators Outlook and others put above the quoted message.
const SEPARATORS: [&str; 4] = [
    "-----original message-----",
    "----- original message -----",
    "-------- original message --------",
    "________________________________",
];

/// Lines that start a forwarded message: everything below is kept.
const FORWARD_MARKERS: [&str; 4] = [
    "---------- forwarded message ---------",
    "begin forwarded message:",
    "-------- forwarded message --------",
    "----- forwarded message -----",
];

/// Mobile and client signatures that stand alone on a line.
const CLIENT_SIGNATURES: [&str; 9] = [
    "sent from my iphone",
    "sent from my ipad",
    "sent from my android",
    "sent from my samsung",
    "sent from my mobile",
    "sent from mail for windows",
    "get outlook for ios",
    "get outlook for android",
    "sent from yahoo mail",
];

/// Outlook's quoted header block: "From:" followed within a few lines by "Sent:"/"Date:" and "To:"
/// or "Subject:" (in English, German, French and Spanish).
fn outlook_header_block(lines: &[&str], i: usize) -> bool {
    let starts = |l: &str, keys: &[&str]| {
        let l = l.trim_start_matches(['*', ' ']).to_lowercase();
        keys.iter().any(|k| l.starts_with(k))
    };
    if !starts(lines[i], &["from:", "von:", "de :", "de:"]) {
        return false;
    }
    let next: Vec<&str> = lines[i + 1..].iter().take(5).copied().collect();
    next.iter().any(|l| starts(l, &["sent:", "date:", "gesendet:", "envoyé :", "envoyé:", "enviado:"]))
        && next.iter().any(|l| starts(l, &["to:", "subject:", "an:", "betreff:", "à :", "objet :", "para:", "asunto:"]))
}

/// An attribution line ("On Tue, 3 Mar 2025 at 10:02, Ann <ann@example.com> wrote:"), possibly
/// wrapped over two lines; returns how many lines it spans.
fn attribution(lines: &[&str], i: usize) -> Option<usize> {
    let is_attr = |s: &str| {
        let l = s.trim().to_lowercase();
        let opens = ["on ", "le ", "am ", "el ", "il ", "op "].iter().any(|p| l.starts_with(p));
        let says =
            ["wrote", "a écrit", "schrieb", "escribió", "ha scritto", "geschreven"].iter().any(|w| l.contains(w));
        (opens && says && l.ends_with(':')) || (l.ends_with("wrote:") && l.contains('@'))
    };
    if is_attr(lines[i]) {
        return Some(1);
    }
    if let Some(next) = lines.get(i + 1) {
        let joined = format!("{} {}", lines[i].trim(), next.trim());
        if !lines[i].trim().is_empty() && is_attr(&joined) {
            return Some(2);
        }
    }
    None
}

fn is_quoted(line: &str) -> bool {
    line.trim_start().starts_with('>')
}

/// The customer's own text of an email body (plain text, or HTML already reduced to text).
pub fn reply_text(body: &str) -> String {
    let body = body.replace("\r\n", "\n");
    let lines: Vec<&str> = body.lines().collect();
    let mut end = lines.len();
    let mut forward_at = None;
    for i in 0..lines.len() {
        let lower = lines[i].trim().to_lowercase();
        if FORWARD_MARKERS.iter().any(|m| lower.starts_with(m)) {
            forward_at = Some(i);
            break;
        }
        let quote_starts = attribution(&lines, i).is_some()
            || SEPARATORS.iter().any(|s| lower.starts_with(s))
            || outlook_header_block(&lines, i)
            // A block of quoted lines that runs to the end (blank lines aside): the quoted history.
            || (is_quoted(lines[i]) && lines[i..].iter().all(|l| is_quoted(l) || l.trim().is_empty()));
        if quote_starts {
            end = i;
            break;
        }
    }
    let (own, forwarded) = match forward_at {
        Some(f) => (&lines[..f], Some(&lines[f..])),
        None => (&lines[..end], None),
    };
    let own = strip_signature(own);
    let mut out = own.join("\n").trim().to_owned();
    if let Some(fwd) = forwarded {
        if !out.is_empty() {
            out.push_str("\n\n");
        }
        out.push_str(fwd.join("\n").trim());
    }
    out
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
        if CLIENT_SIGNATURES.iter().any(|s| lower.starts_with(s)) {
            end = end.min(i);
        }
    }
    let mut own = &lines[..end];
    while own.last().is_some_and(|l| l.trim().is_empty()) {
        own = &own[..own.len() - 1];
    }
    own
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
        assert_eq!(reply_text(inline), inline.trim());
        assert_eq!(
            reply_text("Merci !\n\nLe mar. 3 mars 2026 à 10:02, Acme <support@acme.example> a écrit :\n> x"),
            "Merci !"
        );
        assert_eq!(
            reply_text("Danke\n\nAm Di., 3. März 2026 um 10:02 Uhr schrieb Acme <s@acme.example>:\n> x"),
            "Danke"
        );
    }

    #[test]
    fn a_message_without_history_is_unchanged() {
        assert_eq!(reply_text("Hi,\n\nmy order has not arrived.\n\nAnn"), "Hi,\n\nmy order has not arrived.\n\nAnn");
        assert_eq!(reply_text(""), "");
    }
}
