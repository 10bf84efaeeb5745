//! Names people read: what a name may hold, and the key under which a unique name is
//! unique. Two names a person cannot tell apart must not both exist (an account, a
//! tenant, a role), and no name may hide characters that change what is shown.

use caseless::Caseless;
use unicode_normalization::UnicodeNormalization;

use crate::domain::DomainError;

/// The key a unique name is compared by: trimmed, NFKC-normalised and case-folded
/// (Unicode's full folding, so `ACME`, `ａｃｍｅ` and `acme` collide, and `Straße` with
/// `STRASSE`), then normalised again since folding can undo normalisation. Rejected:
/// `to_lowercase`, which leaves `ß`, full-width forms and ligatures apart.
pub fn unique_key(name: &str) -> String {
    name.trim().nfkc().default_case_fold().nfkc().collect()
}

/// Refuse a name holding control characters, or characters that are invisible or
/// reorder the text around them: zero-width spaces and joiners, bidirectional controls
/// (`U+202E` makes `exe.txt` show as `txt.exe`), soft hyphens, variation selectors, tags.
/// These make two different names look alike, or one name look like something else.
pub fn check_visible(field: &'static str, name: &str) -> Result<(), DomainError> {
    match name.chars().find(|c| c.is_control() || is_invisible(*c)) {
        None => Ok(()),
        Some(c) => Err(DomainError::invalid(
            field,
            format!(
                "must not contain control, zero-width or bidirectional characters (found U+{:04X})",
                u32::from(c)
            ),
        )),
    }
}

/// Unicode's default-ignorable code points and the bidirectional formatting characters.
fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{034F}'
            | '\u{061C}'
            | '\u{115F}'
            | '\u{1160}'
            | '\u{17B4}'
            | '\u{17B5}'
            | '\u{180B}'..='\u{180F}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{206F}'
            | '\u{3164}'
            | '\u{FE00}'..='\u{FE0F}'
            | '\u{FEFF}'
            | '\u{FFA0}'
            | '\u{FFF0}'..='\u{FFF8}'
            | '\u{1BCA0}'..='\u{1BCA3}'
            | '\u{1D173}'..='\u{1D17A}'
            | '\u{E0000}'..='\u{E0FFF}'
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_look_alike_share_a_key() {
        for (a, b) in [
            ("Acme", "ACME"),
            ("acme", "ａｃｍｅ"),
            ("Straße", "STRASSE"),
            ("ﬁnance", "Finance"),
            ("Café", "Cafe\u{301}"),
            (" Ops ", "ops"),
            ("K", "\u{212A}"),
        ] {
            assert_eq!(unique_key(a), unique_key(b), "{a:?} and {b:?}");
        }
        assert_ne!(unique_key("Acme"), unique_key("Acne"));
    }

    #[test]
    fn invisible_and_reordering_characters_are_refused() {
        for bad in [
            "ad\u{200B}min",
            "a\u{200D}b",
            "exe\u{202E}txt",
            "\u{2066}x\u{2069}",
            "x\u{FEFF}",
            "soft\u{00AD}hyphen",
            "tag\u{E0041}",
            "bell\u{7}",
        ] {
            let err = check_visible("name", bad).unwrap_err();
            assert!(
                matches!(err, DomainError::Invalid { field: "name", .. }),
                "{bad:?}"
            );
        }
        for good in ["Acme Corp", "Zoë", "東京", "O'Brien-Smith", "café ☕"] {
            assert!(check_visible("name", good).is_ok(), "{good:?}");
        }
    }
}
