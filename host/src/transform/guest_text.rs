//! Strings that come from a guest (returned errors, panics, rejection
//! reasons, log lines), made safe to store and to print.
//!
//! A guest chooses every byte of these strings, so before one reaches a log,
//! a terminal, a dead letter or an HTTP answer it is
//! - **cut** to a documented size ([`MAX_ERROR_BYTES`], [`MAX_REASON_BYTES`],
//!   [`MAX_LOG_LINE_BYTES`]), with a marker saying how much was left out, and
//! - **escaped**: control characters (newlines, carriage returns, NUL, ANSI
//!   escapes, C1 controls) and the Unicode bidirectional overrides are
//!   written as `\n`, `\r`, `\t` or `\u{..}`, so a guest cannot start a
//!   forged log line, recolour a terminal or reorder what an operator reads.

/// Largest error or panic message kept from a guest, in bytes (4 KiB).
pub const MAX_ERROR_BYTES: usize = 4096;

/// Largest rejection reason kept for one row, in bytes.
pub const MAX_REASON_BYTES: usize = 1000;

/// Largest guest log line kept, in bytes.
pub const MAX_LOG_LINE_BYTES: usize = 1000;

/// `text` escaped and cut to at most `max_bytes` bytes of escaped text, plus a
/// marker naming how many bytes of the original were left out.
pub fn sanitize(text: &str, max_bytes: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max_bytes) + 32);
    for (at, c) in text.char_indices() {
        let before = out.len();
        push_escaped(&mut out, c);
        if out.len() > max_bytes {
            out.truncate(before);
            out.push_str(&format!(" … ({} more bytes cut)", text.len() - at));
            break;
        }
    }
    out
}

/// An error or panic message from a guest, made safe (see [`MAX_ERROR_BYTES`]).
pub fn error(text: &str) -> String {
    sanitize(text, MAX_ERROR_BYTES)
}

fn push_escaped(out: &mut String, c: char) {
    match c {
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        c if needs_escape(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
        c => out.push(c),
    }
}

/// Control characters, the characters that change text direction, and
/// invisible format characters (zero-width spaces and joiners, word
/// joiners, the byte-order mark, tag characters) that hide text.
fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061c}'
                | '\u{180e}'
                | '\u{200b}'..='\u{200f}'
                | '\u{2028}'..='\u{202e}'
                | '\u{2060}'..='\u{206f}'
                | '\u{feff}'
                | '\u{fff9}'..='\u{fffb}'
                | '\u{e0000}'..='\u{e007f}'
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_kept_as_it_is() {
        assert_eq!(sanitize("driver 13 is poison", 100), "driver 13 is poison");
        assert_eq!(sanitize("naïve café ✓", 100), "naïve café ✓");
    }

    #[test]
    fn line_breaks_cannot_start_a_forged_line() {
        let forged = "oops\n2026-01-01T00:00:00Z  INFO operator token accepted\r";
        let safe = sanitize(forged, 1000);
        assert!(!safe.contains('\n') && !safe.contains('\r'), "{safe}");
        assert_eq!(
            safe,
            "oops\\n2026-01-01T00:00:00Z  INFO operator token accepted\\r"
        );
    }

    #[test]
    fn terminal_escapes_nul_and_bidi_overrides_are_escaped() {
        let safe = sanitize(
            "\u{1b}[31mred\u{0}\u{202e}txt\u{2066}\u{9b}\u{200b}\u{feff}\u{e0041}",
            1000,
        );
        assert_eq!(
            safe,
            "\\u{1b}[31mred\\u{0}\\u{202e}txt\\u{2066}\\u{9b}\\u{200b}\\u{feff}\\u{e0041}"
        );
        assert!(safe.chars().all(|c| !needs_escape(c)));
    }

    #[test]
    fn long_text_is_cut_with_a_marker() {
        let huge = "x".repeat(16 << 20);
        let safe = error(&huge);
        assert!(safe.len() < MAX_ERROR_BYTES + 64, "{} bytes", safe.len());
        assert!(safe.starts_with(&"x".repeat(MAX_ERROR_BYTES)));
        assert!(
            safe.ends_with(&format!(
                " … ({} more bytes cut)",
                (16 << 20) - MAX_ERROR_BYTES
            )),
            "{}",
            &safe[MAX_ERROR_BYTES..]
        );
    }

    #[test]
    fn cutting_never_splits_a_character_or_an_escape() {
        let text = "é".repeat(10) + "\n".repeat(10).as_str();
        for max in 0..40 {
            let safe = sanitize(&text, max);
            let kept = safe.split(" … (").next().unwrap_or_default();
            assert!(kept.len() <= max, "max {max}: {safe}");
            assert!(!kept.ends_with('\\'), "max {max}: {safe}");
        }
    }
}
