//! `[gateway] env_file`: a `.env`-style file of `NAME=value` lines that `${NAME}` in an
//! upstream's `command`, `args`, `env`, `cwd`, `url` and `headers` may refer to, so the
//! credentials upstreams need stay out of `warden.toml`. The process environment wins
//! over the file. Reading, checking (a file others can read is a warning) and writing it.

use std::collections::BTreeMap;
use std::path::Path;

/// Variables from an env file, by name.
pub type Vars = BTreeMap<String, String>;

/// Parse env-file text: `NAME=value` or `export NAME=value` per line; `#` comments and
/// blank lines are skipped; a value may be bare (trimmed), 'single-quoted' (as written)
/// or "double-quoted" (with `\"`, `\\`, `\n` escapes). A bad line is an error with its
/// number.
pub fn parse(text: &str) -> Result<Vars, (usize, String)> {
    let mut vars = Vars::new();
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let Some((name, value)) = line.split_once('=') else {
            return Err((n, "expected `NAME=value`".into()));
        };
        let name = name.trim();
        if !valid_name(name) {
            return Err((
                n,
                format!(
                    "`{name}` is not a variable name (letters, digits and `_`, not starting with a digit)"
                ),
            ));
        }
        let value = unquote(value.trim()).map_err(|e| (n, e))?;
        vars.insert(name.to_string(), value);
    }
    Ok(vars)
}

/// A variable name: `[A-Za-z_][A-Za-z0-9_]*`.
pub fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn unquote(value: &str) -> Result<String, String> {
    if let Some(inner) = value.strip_prefix('\'') {
        return inner
            .strip_suffix('\'')
            .map(str::to_string)
            .ok_or_else(|| "unclosed `'`".into());
    }
    let Some(inner) = value.strip_prefix('"') else {
        return Ok(value.to_string());
    };
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                return match chars.as_str().trim() {
                    "" => Ok(out),
                    rest => Err(format!("unexpected `{rest}` after the closing `\"`")),
                };
            }
            '\\' => match chars.next() {
                Some('n') => out.push('\n'),
                Some(e @ ('"' | '\\')) => out.push(e),
                Some(e) => {
                    return Err(format!(
                        "unknown escape `\\{e}`: write `\\\\`, `\\\"` or `\\n`"
                    ));
                }
                None => break,
            },
            c => out.push(c),
        }
    }
    Err("unclosed `\"`".into())
}

/// One `NAME="value"` line, quoted so that [`parse`] reads back exactly `value`.
pub fn line(name: &str, value: &str) -> String {
    let mut quoted = String::with_capacity(value.len() + 2);
    for c in value.chars() {
        match c {
            '"' => quoted.push_str("\\\""),
            '\\' => quoted.push_str("\\\\"),
            '\n' => quoted.push_str("\\n"),
            c => quoted.push(c),
        }
    }
    format!("{name}=\"{quoted}\"\n")
}

/// Whether anyone but the file's owner may read it (always false off Unix).
pub fn readable_by_others(path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o077 != 0)
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_quoting_reads_back_and_a_written_line_reads_back_exactly() {
        let vars = parse(
            "# comment\n\nA=plain value \nexport B='it''s'\nC=\"x \\\"y\\\" \\\\ \\n\"\nD=\nE=a=b\n",
        );
        let vars = vars.unwrap();
        assert_eq!(vars["A"], "plain value");
        assert_eq!(vars["B"], "it''s");
        assert_eq!(vars["C"], "x \"y\" \\ \n");
        assert_eq!(vars["D"], "");
        assert_eq!(vars["E"], "a=b");
        for value in ["", "p@ss\"w\\rd\n2", "  spaced  ", "'q'", "#not a comment"] {
            assert_eq!(parse(&line("V", value)).unwrap()["V"], value, "{value:?}");
        }
    }

    #[test]
    fn a_bad_line_is_named_by_its_number() {
        assert_eq!(parse("A=1\nnonsense\n").unwrap_err().0, 2);
        assert_eq!(parse("A=1\n\n1A=2\n").unwrap_err().0, 3);
        assert_eq!(parse("A=\"open\n").unwrap_err().0, 1);
        assert_eq!(parse("A=\"x\" y\n").unwrap_err().0, 1);
        assert_eq!(parse("A='x\n").unwrap_err().0, 1);
    }
}
