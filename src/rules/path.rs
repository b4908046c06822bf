//! The `path` rule: `within = ["/srv/data"]`, and `resolve_symlinks = true` when the
//! gateway sees the same filesystem as the upstream. A value must be an absolute path
//! with no control character, no backslash and no character that looks like a separator
//! or a dot, no percent-encoded separator or dot; it is normalised lexically (`.` and `..`
//! resolved, repeated separators collapsed) and must then be one of the roots or inside
//! one.

use serde_json::{Map, Value};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathRule {
    /// Normalised absolute roots.
    within: Vec<String>,
    resolve_symlinks: bool,
}

/// Characters that some servers, libraries or file systems treat as a separator or a dot
/// (after Unicode normalisation, or on Windows): refused outright.
const LOOK_ALIKES: [char; 12] = [
    '\\', '\u{2215}', '\u{2044}', '\u{FF0F}', '\u{29F8}', '\u{FF3C}', '\u{2216}', '\u{FE68}',
    '\u{29F5}', '\u{2024}', '\u{FF0E}', '\u{FE52}',
];

impl PathRule {
    pub fn parse(table: &Map<String, Value>) -> Result<Self, String> {
        super::unknown("path", table, &["within", "resolve_symlinks"])?;
        let roots = super::strings("path", table, "within")?;
        if roots.is_empty() {
            return Err(
                "`path.within` must list at least one root, e.g. within = [\"/srv/data\"]".into(),
            );
        }
        let mut within = Vec::new();
        for root in roots {
            if !root.starts_with('/') || super::has_control(&root) {
                return Err(format!("`path.within`: `{root}` is not an absolute path"));
            }
            within.push(normalise(&root));
        }
        let resolve_symlinks = match table.get("resolve_symlinks") {
            None => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => return Err("`path.resolve_symlinks` is true or false".into()),
        };
        if resolve_symlinks {
            within = within.iter().map(|r| resolve(r)).collect();
        }
        Ok(Self {
            within,
            resolve_symlinks,
        })
    }

    pub fn check(&self, value: &str) -> Result<(), String> {
        if value.is_empty() {
            return Err("is an empty path".into());
        }
        if super::has_control(value) {
            return Err("holds a control character (NUL, newline, …)".into());
        }
        if value.chars().any(|c| LOOK_ALIKES.contains(&c)) {
            return Err(
                "holds a backslash or a character that looks like a separator or a dot".into(),
            );
        }
        if percent_encoded_separator(value) {
            return Err("holds a percent-encoded separator or dot".into());
        }
        if !value.starts_with('/') {
            return Err("is not an absolute path".into());
        }
        let mut path = normalise(value);
        if self.resolve_symlinks {
            path = resolve(&path);
        }
        match self.within.iter().any(|root| inside(&path, root)) {
            true => Ok(()),
            false => Err(format!("is outside {}", self.roots())),
        }
    }

    fn roots(&self) -> String {
        self.within
            .iter()
            .map(|r| format!("`{r}`"))
            .collect::<Vec<_>>()
            .join(", ")
    }

    pub fn explain(&self) -> String {
        let symlinks = match self.resolve_symlinks {
            true => ", symbolic links resolved on this machine",
            false => "",
        };
        format!(
            "an absolute path inside {} after `.` and `..` are resolved{symlinks}; no control characters, look-alike or encoded separators",
            self.roots()
        )
    }
}

/// `/a//b/./c/../d` → `/a/b/d`; `..` at the root stays at the root.
pub fn normalise(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    format!("/{}", parts.join("/"))
}

fn inside(path: &str, root: &str) -> bool {
    root == "/"
        || path == root
        || path
            .strip_prefix(root)
            .is_some_and(|rest| rest.starts_with('/'))
}

fn percent_encoded_separator(value: &str) -> bool {
    let lower = value.to_ascii_lowercase();
    ["%2f", "%5c", "%2e", "%00"]
        .iter()
        .any(|e| lower.contains(e))
}

/// A normalised path with its symbolic links resolved, as far as it exists: the longest
/// existing ancestor is resolved and the rest (which does not exist, so holds no link)
/// kept.
fn resolve(path: &str) -> String {
    let full = std::path::Path::new(path);
    for ancestor in full.ancestors() {
        if let Ok(real) = std::fs::canonicalize(ancestor) {
            let rest = full.strip_prefix(ancestor).unwrap_or(full);
            let joined = real.join(rest);
            return normalise(&joined.to_string_lossy());
        }
    }
    path.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rule(v: Value) -> PathRule {
        PathRule::parse(v.as_object().unwrap()).unwrap()
    }

    #[test]
    fn a_path_must_stay_inside_a_root_however_it_is_written() {
        let data = rule(json!({"within": ["/data", "/srv/shared/"]}));
        for ok in [
            "/data",
            "/data/a.txt",
            "/data/./x/../y",
            "//data//a",
            "/srv/shared/x",
            "/data/a..b",
            "/data/...",
            "/data/.hidden",
        ] {
            assert_eq!(data.check(ok), Ok(()), "{ok}");
        }
        let refused = [
            ("/data/../etc/passwd", "outside"),
            ("/data/x/../../etc", "outside"),
            ("/database/x", "outside"),
            ("/../data/../etc", "outside"),
            ("/", "outside"),
            ("/data/x\n/etc/passwd", "control character"),
            ("/data/x\0/etc", "control character"),
            ("/data/\u{85}x", "control character"),
            ("data/a", "not an absolute path"),
            ("~/data", "not an absolute path"),
            ("", "empty"),
            ("/data/..\\..\\etc", "backslash"),
            ("/data/\u{2215}..\u{2215}etc", "looks like a separator"),
            (
                "/data/\u{FF0E}\u{FF0E}/etc",
                "looks like a separator or a dot",
            ),
            ("/data/%2e%2e/etc", "percent-encoded"),
            ("/data/..%2Fetc", "percent-encoded"),
            ("/data/x%00.txt", "percent-encoded"),
        ];
        for (value, says) in refused {
            let err = data.check(value).unwrap_err();
            assert!(err.contains(says), "{value:?}: {err}");
            assert!(!err.contains("etc"), "the value is never echoed: {err}");
        }
    }

    #[test]
    fn a_rule_that_cannot_work_is_refused_at_load() {
        for (bad, says) in [
            (json!({}), "at least one root"),
            (json!({"within": []}), "at least one root"),
            (json!({"within": ["data"]}), "not an absolute path"),
            (json!({"within": "/data"}), "list of strings"),
            (
                json!({"within": ["/d"], "resolve_symlinks": "yes"}),
                "true or false",
            ),
            (json!({"within": ["/d"], "root": "/"}), "no setting `root`"),
        ] {
            let err = PathRule::parse(bad.as_object().unwrap()).unwrap_err();
            assert!(err.contains(says), "{bad}: {err}");
        }
    }

    /// With `resolve_symlinks`, a link inside the root that points outside it is followed
    /// and refused; without, the path is judged as written.
    #[test]
    fn resolved_symlinks_cannot_lead_out_of_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir(&root).unwrap();
        std::os::unix::fs::symlink("/etc", root.join("out")).unwrap();
        std::fs::write(root.join("in.txt"), "x").unwrap();
        let within = json!({"within": [root.to_str().unwrap()], "resolve_symlinks": true});
        let resolving = rule(within);
        let out = format!("{}/out/passwd", root.display());
        assert!(resolving.check(&out).unwrap_err().contains("outside"));
        assert_eq!(
            resolving.check(&format!("{}/in.txt", root.display())),
            Ok(())
        );
        assert_eq!(
            resolving.check(&format!("{}/new/file", root.display())),
            Ok(())
        );
        let literal = rule(json!({"within": [root.to_str().unwrap()]}));
        assert_eq!(literal.check(&out), Ok(()));
    }
}
