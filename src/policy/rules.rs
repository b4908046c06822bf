//! The policy files, checked line by line before Casbin sees them: the model's shape
//! (what a `p` and a `g` row must hold) and every row of `policy.csv`. Casbin's own file
//! adapter drops unknown row types silently and errors on every request after one bad
//! row; here each such row is an error with its line, and nothing loads.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::path::Path;

use casbin::{DefaultModel, Model};
use serde::{Serialize, Serializer};

use crate::problem::Problem;

/// One row of the policy file, where it came from; or a just-in-time grant, which
/// decides like a row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub file: String,
    pub line: usize,
    /// The row's fields after the rule type (`role:x, demo/*, read, allow`).
    pub fields: Vec<String>,
    /// The grant's id, when this is a grant.
    pub grant: Option<String>,
}

impl Rule {
    /// The row a grant stands for: `p, TO, TOOLS, TIER, allow`.
    pub fn of_grant(grant: &crate::grant::Grant) -> Self {
        Self {
            file: String::new(),
            line: 0,
            fields: vec![
                grant.to.clone(),
                grant.tools.clone(),
                grant.tier.as_str().into(),
                "allow".into(),
            ],
            grant: Some(grant.id.clone()),
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.grant {
            Some(id) => write!(f, "`p, {}` (grant {id})", self.fields.join(", ")),
            None => write!(
                f,
                "`p, {}` ({}:{})",
                self.fields.join(", "),
                self.file,
                self.line
            ),
        }
    }
}

impl Serialize for Rule {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let fields = self.fields.join(", ");
        s.serialize_str(&match &self.grant {
            Some(id) => format!("grant {id}: p, {fields}"),
            None => format!("{}:{}: p, {fields}", self.file, self.line),
        })
    }
}

/// What the model says a row must look like.
#[derive(Debug, Clone)]
pub struct ModelShape {
    p_fields: Vec<String>,
    eft_index: usize,
    act_index: Option<usize>,
    /// The `p` field the matcher requires to be the requester or one of its roles.
    subject_index: Option<usize>,
    /// Grouping types (`g`, `g2`, …) and how many fields each takes.
    groupings: BTreeMap<String, usize>,
}

/// The rows that passed every check.
#[derive(Debug, Clone, Default)]
pub struct Checked {
    pub policies: Vec<Rule>,
    pub groupings: BTreeMap<String, Vec<Vec<String>>>,
    pub eft_index: usize,
    /// Which field is the tier, when the model has one.
    pub act_index: Option<usize>,
    /// Which field the matcher requires to be the requester or one of its roles (rows can
    /// then be indexed by it), when it says so in a way that can be relied on.
    pub subject_index: Option<usize>,
}

const EFFECTS: [&str; 5] = ["allow", "deny", "approve", "confirm", "confirm_in_client"];
const ACTS: [&str; 5] = ["read", "transform", "act", "approve", "*"];

/// Read the model and check it has what the gateway needs.
pub async fn model_shape(file: &Path, text: &str) -> Result<ModelShape, Problem> {
    let model = DefaultModel::from_str(text)
        .await
        .map_err(|e| Problem::error(file, None, format!("invalid model: {e}")))?;
    let sections = model.get_model();
    let tokens = |sec: &str, key: &str| {
        sections
            .get(sec)
            .and_then(|s| s.get(key))
            .map(|a| a.tokens.clone())
    };
    let problem = |msg: &str| Problem::error(file, None, msg.to_string());
    let r = tokens("r", "r")
        .ok_or_else(|| problem("the model needs `[request_definition] r = sub, obj, act`"))?;
    if r.len() != 3 {
        return Err(problem(
            "`r` must have exactly three fields (sub, obj, act): the gateway asks about a subject, a `server/tool` object and a tier",
        ));
    }
    let p = tokens("p", "p")
        .ok_or_else(|| problem("the model needs `[policy_definition] p = sub, obj, act, eft`"))?;
    let p_fields: Vec<String> = p
        .iter()
        .map(|t| t.trim_start_matches("p_").to_string())
        .collect();
    let eft_index = p_fields.iter().position(|f| f == "eft").ok_or_else(|| {
        problem("`p` must have an `eft` field (allow, deny, approve, confirm or confirm_in_client): p = sub, obj, act, eft")
    })?;
    let act_index = p_fields.iter().position(|f| f == "act");
    if sections.get("r").is_some_and(|s| s.len() > 1)
        || sections.get("p").is_some_and(|s| s.len() > 1)
    {
        return Err(problem(
            "only one request (`r`) and one policy (`p`) definition are supported",
        ));
    }
    let matcher = sections
        .get("m")
        .and_then(|s| s.get("m"))
        .map(|a| a.value.clone())
        .unwrap_or_default();
    if matcher.contains("regexMatch") || matcher.contains("globMatch") {
        return Err(problem(
            "the matcher uses `regexMatch` or `globMatch`, which can crash on a bad pattern: use `keyMatch` (`*` wildcards) instead",
        ));
    }
    let groupings = sections
        .get("g")
        .map(|g| {
            g.iter()
                .map(|(k, a)| (k.clone(), a.value.matches('_').count()))
                .collect()
        })
        .unwrap_or_default();
    let subject_index = super::narrow::subject_field(&r, &p, &matcher, &groupings);
    Ok(ModelShape {
        p_fields,
        eft_index,
        act_index,
        subject_index,
        groupings,
    })
}

/// Check every row of a policy file against the model's shape.
pub fn parse(file: &Path, text: &str, shape: &ModelShape) -> (Checked, Vec<Problem>) {
    let mut checked = Checked {
        eft_index: shape.eft_index,
        act_index: shape.act_index,
        subject_index: shape.subject_index,
        ..Checked::default()
    };
    let mut problems = Vec::new();
    let mut seen = HashSet::new();
    for (n, raw) in text.lines().enumerate() {
        let line = n + 1;
        let fields = split_row(raw);
        let Some((ptype, rest)) = fields.split_first() else {
            continue;
        };
        if !seen.insert(fields.clone()) {
            problems.push(Problem::warning(
                file,
                Some(line),
                "duplicate rule (has no effect)",
            ));
            continue;
        }
        match check_row(ptype, rest, shape) {
            Err(msg) => problems.push(Problem::error(file, Some(line), msg)),
            Ok(true) => checked.policies.push(Rule {
                file: file.display().to_string(),
                line,
                fields: rest.to_vec(),
                grant: None,
            }),
            Ok(false) => checked
                .groupings
                .entry(ptype.clone())
                .or_default()
                .push(rest.to_vec()),
        }
    }
    (checked, problems)
}

/// `Ok(true)` for a valid `p` row, `Ok(false)` for a valid grouping row.
fn check_row(ptype: &str, fields: &[String], shape: &ModelShape) -> Result<bool, String> {
    if fields.iter().any(String::is_empty) {
        return Err("empty field: every field needs a value".into());
    }
    if ptype == "p" {
        if fields.len() != shape.p_fields.len() {
            return Err(format!(
                "`p` rows need {} fields ({}), this one has {}",
                shape.p_fields.len(),
                shape.p_fields.join(", "),
                fields.len()
            ));
        }
        let eft = fields
            .get(shape.eft_index)
            .map(String::as_str)
            .unwrap_or_default();
        if !EFFECTS.contains(&eft) {
            return Err(format!(
                "unknown effect `{eft}`: use `allow`, `deny`, `approve`, `confirm` or `confirm_in_client`"
            ));
        }
        if let Some(act) = shape.act_index.and_then(|i| fields.get(i)) {
            if !ACTS.contains(&act.as_str()) {
                return Err(format!(
                    "unknown tier `{act}`: use `read`, `transform`, `act`, `approve` (who may approve) or `*`"
                ));
            }
            if eft.starts_with("confirm") && act == "approve" {
                return Err(format!(
                    "`{eft}` is for calls (the principal confirms their agent's call), not for who may approve: use `allow` on the `approve` tier"
                ));
            }
        }
        return Ok(true);
    }
    match shape.groupings.get(ptype) {
        Some(&arity) if arity == fields.len() => Ok(false),
        Some(&arity) => Err(format!(
            "`{ptype}` rows need {arity} fields, this one has {}",
            fields.len()
        )),
        None => Err(format!(
            "unknown rule type `{ptype}`: the model defines `p`{}",
            shape
                .groupings
                .keys()
                .map(|g| format!(", `{g}`"))
                .collect::<String>()
        )),
    }
}

/// Split a CSV row: `#` starts a comment outside quotes; fields are trimmed and may be
/// double-quoted. A blank or comment-only line has no fields.
fn split_row(raw: &str) -> Vec<String> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    for c in raw.chars() {
        match (c, quoted) {
            ('"', _) => quoted = !quoted,
            ('#', false) => break,
            (',', false) => fields.push(std::mem::take(&mut field).trim().to_string()),
            (c, _) => field.push(c),
        }
    }
    let last = field.trim().to_string();
    if fields.is_empty() && last.is_empty() {
        return Vec::new();
    }
    fields.push(last);
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    pub const MODEL: &str = include_str!("../../policies/model.conf");

    async fn shape() -> ModelShape {
        model_shape(Path::new("model.conf"), MODEL).await.unwrap()
    }

    #[test]
    fn rows_split_with_comments_and_quotes() {
        assert_eq!(
            split_row(" p, a , \"b,c\", read, allow  # note"),
            vec!["p", "a", "b,c", "read", "allow"]
        );
        assert!(split_row("   # only a comment").is_empty());
        assert!(split_row("").is_empty());
    }

    #[tokio::test]
    async fn each_casbin_trap_is_an_error_on_its_line() {
        let text = "p, role:a, demo/*, read, allow\npp, role:a, demo/*, read, allow\np, role:a, demo/*, read\np, role:a, demo/*, raed, allow\np, role:a, demo/*, read, permit\ng, a\n";
        let (checked, problems) = parse(Path::new("policy.csv"), text, &shape().await);
        assert_eq!(checked.policies.len(), 1);
        let lines: Vec<_> = problems.iter().map(|p| (p.line, p.is_error())).collect();
        assert_eq!(
            lines,
            vec![
                (Some(2), true),
                (Some(3), true),
                (Some(4), true),
                (Some(5), true),
                (Some(6), true)
            ],
            "{problems:?}"
        );
        assert!(problems[0].message.contains("unknown rule type `pp`"));
    }

    #[tokio::test]
    async fn a_model_without_eft_is_refused() {
        let model = MODEL.replace("p = sub, obj, act, eft", "p = sub, obj, act");
        let err = model_shape(Path::new("m.conf"), &model).await.unwrap_err();
        assert!(err.message.contains("`eft`"), "{err}");
    }

    #[tokio::test]
    async fn regex_matchers_are_refused() {
        let model = MODEL.replace("keyMatch(r.obj, p.obj)", "regexMatch(r.obj, p.obj)");
        assert!(model_shape(Path::new("m.conf"), &model).await.is_err());
    }
}
