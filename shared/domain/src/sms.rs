//! SMS encoding and segments, computed exactly as carriers count them (3GPP TS 23.038 / 23.040).
//!
//! - GSM-7 if every character is in the GSM 03.38 default alphabet or its extension table; an
//!   extension character (`^ { } \ [ ~ ] | €` and form feed) takes two septets (escape + code).
//!   One message holds 160 septets; a multipart message 153 per part (7 go to the concatenation
//!   header), and an escape pair is never split across parts.
//! - Otherwise UCS-2 (UTF-16 on the wire, as every modern handset decodes it): one message holds 70
//!   code units, a multipart message 67 per part; a character outside the BMP (most emoji) is a
//!   surrogate pair of two units and is never split across parts.
//!
//! A single character outside GSM-7 switches the whole message to UCS-2.

use serde::Serialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Encoding {
    Gsm7,
    Ucs2,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Segmentation {
    pub encoding: Encoding,
    /// Parts the carrier bills and delivers.
    pub segments: u32,
    /// Septets (GSM-7) or UTF-16 code units (UCS-2) of the whole text.
    pub units: u32,
    /// The first character that forced UCS-2, for telling an agent why.
    pub ucs2_because_of: Option<char>,
}

const GSM7_BASIC: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡\
ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
const GSM7_EXTENSION: &str = "^{}\\[~]|€\u{000C}";

/// Septets a character takes in GSM-7, or `None` if it is not in the alphabet.
fn gsm7_septets(c: char) -> Option<u32> {
    if GSM7_BASIC.contains(c) {
        Some(1)
    } else if GSM7_EXTENSION.contains(c) {
        Some(2)
    } else {
        None
    }
}

const GSM7_SINGLE: u32 = 160;
const GSM7_PART: u32 = 153;
const UCS2_SINGLE: u32 = 70;
const UCS2_PART: u32 = 67;

/// Packs indivisible items of the given widths into parts of `part` units.
fn parts(widths: impl Iterator<Item = u32>, part: u32) -> u32 {
    let mut count = 1;
    let mut used = 0;
    for w in widths {
        if used + w > part {
            count += 1;
            used = 0;
        }
        used += w;
    }
    count
}

pub fn segment(text: &str) -> Segmentation {
    let ucs2_because_of = text.chars().find(|c| gsm7_septets(*c).is_none());
    match ucs2_because_of {
        None => {
            let widths = || text.chars().map(|c| gsm7_septets(c).unwrap_or(1));
            let units: u32 = widths().sum();
            let segments = if units <= GSM7_SINGLE { 1 } else { parts(widths(), GSM7_PART) };
            Segmentation { encoding: Encoding::Gsm7, segments, units, ucs2_because_of: None }
        }
        Some(_) => {
            let widths = || text.chars().map(|c| c.len_utf16() as u32);
            let units: u32 = widths().sum();
            let segments = if units <= UCS2_SINGLE { 1 } else { parts(widths(), UCS2_PART) };
            Segmentation { encoding: Encoding::Ucs2, segments, units, ucs2_because_of }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn seg(s: &str) -> (Encoding, u32) {
        let r = segment(s);
        (r.encoding, r.segments)
    }

    #[test]
    fn gsm7_boundaries() {
        assert_eq!(seg(&"a".repeat(160)), (Encoding::Gsm7, 1));
        assert_eq!(seg(&"a".repeat(161)), (Encoding::Gsm7, 2));
        assert_eq!(seg(&"a".repeat(306)), (Encoding::Gsm7, 2));
        assert_eq!(seg(&"a".repeat(307)), (Encoding::Gsm7, 3));
        assert_eq!(seg(""), (Encoding::Gsm7, 1));
    }

    #[test]
    fn extension_characters_count_twice_and_are_not_split() {
        assert_eq!(segment("€").units, 2);
        assert_eq!(seg(&"€".repeat(80)), (Encoding::Gsm7, 1), "160 septets");
        assert_eq!(seg(&"€".repeat(81)), (Encoding::Gsm7, 2), "162 septets");
        // 152 septets then an escape pair: the pair moves whole to the next part.
        let s = format!("{}€{}", "a".repeat(152), "a".repeat(152));
        assert_eq!(segment(&s).units, 306);
        assert_eq!(seg(&s), (Encoding::Gsm7, 3));
        assert_eq!(seg(&format!("{}€", "a".repeat(158))), (Encoding::Gsm7, 1), "exactly 160");
        assert_eq!(seg(&format!("{}€", "a".repeat(159))), (Encoding::Gsm7, 2), "161");
    }

    #[test]
    fn ucs2_boundaries_and_surrogate_pairs() {
        assert_eq!(seg(&"ç".repeat(70)), (Encoding::Ucs2, 1));
        assert_eq!(seg(&"ç".repeat(71)), (Encoding::Ucs2, 2));
        assert_eq!(seg(&"ç".repeat(134)), (Encoding::Ucs2, 2));
        assert_eq!(seg(&"ç".repeat(135)), (Encoding::Ucs2, 3));
        assert_eq!(segment("😀").units, 2);
        assert_eq!(seg(&"😀".repeat(35)), (Encoding::Ucs2, 1), "70 units");
        // 72 units: 33 emoji fill 66 of the first part; the 34th does not fit in the last unit.
        assert_eq!(seg(&"😀".repeat(36)), (Encoding::Ucs2, 2));
        // 134 units would fill two parts exactly, but the pair straddling the first boundary moves
        // whole to the second part, which then overflows into a third.
        let straddling = format!("{}😀{}", "x".repeat(66), "x".repeat(66));
        assert_eq!(segment(&straddling).units, 134);
        assert_eq!(seg(&straddling), (Encoding::Ucs2, 3));
    }

    #[test]
    fn one_non_gsm_character_switches_the_whole_message() {
        let s = format!("{}ç", "a".repeat(159));
        let r = segment(&s);
        assert_eq!(r.encoding, Encoding::Ucs2);
        assert_eq!(r.ucs2_because_of, Some('ç'));
        assert_eq!(r.segments, 3, "160 UCS-2 units: 67 + 67 + 26");
        assert_eq!(seg("Çava? Ça va."), (Encoding::Gsm7, 1), "Ç is GSM-7, ç is not");
    }

    proptest! {
        #[test]
        fn parts_always_hold_the_text(s in "[a-z€ç😀 ]{0,400}") {
            let r = segment(&s);
            let (single, part) = match r.encoding { Encoding::Gsm7 => (160, 153), Encoding::Ucs2 => (70, 67) };
            prop_assert!(r.segments >= 1);
            if r.units <= single { prop_assert_eq!(r.segments, 1); }
            else { prop_assert!(r.segments * part >= r.units); prop_assert!(r.segments >= r.units.div_ceil(part)); }
        }

        #[test]
        fn appending_never_reduces_segments(s in "[a-z€ç😀 ]{0,300}", c in "[a-z€ç😀 ]") {
            let longer = format!("{s}{c}");
            // Switching encoding can only grow the count too (UCS-2 parts are smaller).
            prop_assert!(segment(&longer).segments >= segment(&s).segments);
        }
    }
}
