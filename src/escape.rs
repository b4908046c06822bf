//! Escaping text for people: agent- and upstream-supplied text shown in a terminal, a
//! log line or a notice, with control, bidi and invisible characters written as
//! `\u{…}` escapes so that it cannot rewrite the screen or hide what it says. Owns no
//! markup escaping (the approvals page renders text as text) and decides nothing.

/// `s` with control, bidi and invisible characters shown as `\u{…}` escapes, for
/// terminals and logs an approver reads.
pub fn visible(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if hidden(c) {
            out.push_str(&format!("\\u{{{:04X}}}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    out
}

fn hidden(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{ad}' | '\u{61c}' | '\u{115f}' | '\u{1160}' | '\u{180e}' | '\u{3164}' | '\u{feff}'
            | '\u{200b}'..='\u{200f}' | '\u{2028}'..='\u{202e}' | '\u{2060}'..='\u{206f}'
            | '\u{fe00}'..='\u{fe0f}' | '\u{fff9}'..='\u{fffb}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hidden_characters_are_shown_escaped() {
        assert_eq!(
            visible("pay \u{202e}evil\u{1b}[2J ok\n"),
            "pay \\u{202E}evil\\u{001B}[2J ok\\u{000A}"
        );
        assert_eq!(visible("plain é 日本"), "plain é 日本");
    }
}
