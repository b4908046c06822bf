//! Cold decisions without scanning every row. Casbin tries each `p` row in turn (about
//! 1.4 µs a row), so the first decision for an identity, object and tier under 10,000
//! rules took tens of milliseconds. When the model's matcher requires `g(r.sub, p.sub)`
//! (a conjunct at its top level, the only place `p.sub` or any role function appears),
//! a row can match only if its subject is the requester or one of the requester's
//! roles. [`Narrow`] indexes the rows by subject and loads just those rows, with the
//! requester's role links, into enforcers kept for the purpose; Casbin still evaluates
//! the matcher on each of them, so it still decides. Any other matcher is decided by
//! the enforcers that hold every row.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use casbin::{CoreApi, Enforcer, RbacApi};

use super::rules::Checked;

/// Which enforcer a question is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    Allow,
    /// Only the `allow` rules that name the `act` tier itself (not `*`).
    AllowAct,
    Deny,
    Approve,
    Confirm,
    ConfirmInClient,
}

impl Which {
    pub const ALL: [Which; 6] = [
        Which::Allow,
        Which::AllowAct,
        Which::Deny,
        Which::Approve,
        Which::Confirm,
        Which::ConfirmInClient,
    ];

    /// The effect its rows carry in the policy file.
    pub fn effect(self) -> &'static str {
        match self {
            Which::Allow | Which::AllowAct => "allow",
            Which::Deny => "deny",
            Which::Approve => "approve",
            Which::Confirm => "confirm",
            Which::ConfirmInClient => "confirm_in_client",
        }
    }

    /// The row as this enforcer holds it (its effect rewritten to a plain `allow`), or
    /// `None` when the row is not this enforcer's.
    pub fn select(self, checked: &Checked, fields: &[String]) -> Option<Vec<String>> {
        let eft = checked.eft_index;
        let act = checked.act_index.and_then(|i| fields.get(i));
        let ours = fields.get(eft).is_some_and(|f| f == self.effect())
            && (self != Which::AllowAct || act.is_some_and(|a| a == "act"));
        ours.then(|| {
            let mut fields = fields.to_vec();
            if let Some(f) = fields.get_mut(eft) {
                *f = "allow".into();
            }
            fields
        })
    }
}

/// One enforcer for each [`Which`], in the order of [`Which::ALL`].
pub struct Enforcers([Enforcer; 6]);

impl Enforcers {
    pub fn new(enforcers: [Enforcer; 6]) -> Self {
        Self(enforcers)
    }

    pub fn get(&self, which: Which) -> &Enforcer {
        let [allow, allow_act, deny, approve, confirm, confirm_in_client] = &self.0;
        match which {
            Which::Allow => allow,
            Which::AllowAct => allow_act,
            Which::Deny => deny,
            Which::Approve => approve,
            Which::Confirm => confirm,
            Which::ConfirmInClient => confirm_in_client,
        }
    }

    fn get_mut(&mut self, which: Which) -> &mut Enforcer {
        let [allow, allow_act, deny, approve, confirm, confirm_in_client] = &mut self.0;
        match which {
            Which::Allow => allow,
            Which::AllowAct => allow_act,
            Which::Deny => deny,
            Which::Approve => approve,
            Which::Confirm => confirm,
            Which::ConfirmInClient => confirm_in_client,
        }
    }
}

/// The rows by subject, and enforcers to load a requester's share of them into.
pub struct Narrow {
    checked: Checked,
    /// Subject → positions in `checked.policies`, in file order.
    by_subject: HashMap<String, Vec<usize>>,
    scratch: Mutex<Enforcers>,
}

impl Narrow {
    /// Index the `p` rows of `checked` by its subject field; `scratch` are enforcers with
    /// the model and no rows. Grouping rows are not kept: links come from the full
    /// enforcers' role manager.
    pub fn new(mut checked: Checked, subject: usize, scratch: Enforcers) -> Self {
        checked.groupings.clear();
        let mut by_subject: HashMap<String, Vec<usize>> = HashMap::new();
        for (at, rule) in checked.policies.iter().enumerate() {
            if let Some(s) = rule.fields.get(subject) {
                by_subject.entry(s.clone()).or_default().push(at);
            }
        }
        Self {
            checked,
            by_subject,
            scratch: Mutex::new(scratch),
        }
    }

    /// Run `ask` on enforcers that hold only the rows whose subject is `identity` or one
    /// of its roles (as `full`'s role manager links them), and those links; only the
    /// enforcers in `needed` are loaded. `None` when the enforcers cannot be had (the
    /// caller then asks `full`).
    pub fn with<T>(
        &self,
        full: &Enforcers,
        identity: &str,
        needed: &[Which],
        ask: impl FnOnce(&Enforcers) -> T,
    ) -> Option<casbin::Result<T>> {
        let roles = roles_of(full.get(Which::Allow), identity);
        let mut rows: Vec<usize> = std::iter::once(identity)
            .chain(roles.iter().map(String::as_str))
            .filter_map(|s| self.by_subject.get(s))
            .flatten()
            .copied()
            .collect();
        // The order Casbin would meet them in, so the first match is the same rule.
        rows.sort_unstable();
        let links: Vec<Vec<String>> = roles
            .into_iter()
            .map(|r| vec![identity.to_string(), r])
            .collect();
        let mut scratch = self.scratch.lock().ok()?;
        for which in needed {
            if let Err(e) = self.load(&mut scratch, *which, &rows, &links) {
                return Some(Err(e));
            }
        }
        Some(Ok(ask(&scratch)))
    }

    fn load(
        &self,
        scratch: &mut Enforcers,
        which: Which,
        rows: &[usize],
        links: &[Vec<String>],
    ) -> casbin::Result<()> {
        let selected: Vec<Vec<String>> = rows
            .iter()
            .filter_map(|at| self.checked.policies.get(*at))
            .filter_map(|rule| which.select(&self.checked, &rule.fields))
            .collect();
        let enforcer = scratch.get_mut(which);
        let model = enforcer.get_mut_model();
        model.clear_policy();
        if !selected.is_empty() {
            model.add_policies("p", "p", selected);
        }
        if !links.is_empty() {
            model.add_policies("g", "g", links.to_vec());
        }
        enforcer.build_role_links()
    }
}

/// Every role `identity` holds, as Casbin's role manager links them (`has_link`, with
/// its depth limit), itself excluded.
fn roles_of(enforcer: &Enforcer, identity: &str) -> Vec<String> {
    let implicit = enforcer.get_implicit_roles_for_user(identity, None);
    let manager = enforcer.get_role_manager();
    let manager = manager.read();
    implicit
        .into_iter()
        .filter(|r| r != identity && manager.has_link(identity, r, None))
        .collect()
}

/// The `p` field the matcher requires to be the requester or one of its roles, when it
/// says so in a way that can be relied on: its top level is a conjunction (`&&` only),
/// one conjunct is exactly `g(r.SUB, p.SUB)` with `SUB` the first field of `r` and of
/// `p`, `p.SUB` appears nowhere else, and `g` (two fields) is the only role definition
/// and is called nowhere else.
pub fn subject_field(
    r: &[String],
    p: &[String],
    matcher: &str,
    groupings: &BTreeMap<String, usize>,
) -> Option<usize> {
    let plain = |t: &str| t.replace('.', "_");
    let (r_sub, p_sub) = (plain(r.first()?), plain(p.first()?));
    let m: String = matcher
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .replace("r.", "r_")
        .replace("p.", "p_");
    let only_g = groupings.len() == 1 && groupings.get("g") == Some(&2);
    let conjuncts = top_level_conjuncts(&m)?;
    let wanted = format!("g({r_sub},{p_sub})");
    let required = conjuncts.iter().filter(|c| **c == wanted).count() == 1;
    (only_g && required && occurrences(&m, &p_sub) == 1 && occurrences(&m, "g(") == 1).then_some(0)
}

/// The matcher split at its top-level `&&`s; `None` when its top level has a `||`, or
/// its quotes or parentheses do not balance.
fn top_level_conjuncts(m: &str) -> Option<Vec<&str>> {
    let bytes = m.as_bytes();
    let (mut depth, mut quoted, mut start, mut parts) = (0i32, None::<u8>, 0, Vec::new());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match (quoted, b) {
            (Some(q), _) if b == q => quoted = None,
            (Some(_), _) => {}
            (None, b'"' | b'\'') => quoted = Some(b),
            (None, b'(') => depth += 1,
            (None, b')') => depth -= 1,
            (None, b'&' | b'|') if depth == 0 && bytes.get(i + 1) == Some(&b) => {
                if b == b'|' {
                    return None;
                }
                parts.push(m.get(start..i)?);
                start = i + 2;
                i += 1;
            }
            _ => {}
        }
        i += 1;
    }
    if depth != 0 || quoted.is_some() {
        return None;
    }
    parts.push(m.get(start..)?);
    Some(parts)
}

/// How often `token` stands in `m` with no name character just before it (and, for a
/// name, none just after).
fn occurrences(m: &str, token: &str) -> usize {
    let name = |c: char| c.is_alphanumeric() || c == '_';
    m.match_indices(token)
        .filter(|(at, _)| {
            !m.get(..*at)
                .and_then(|s| s.chars().last())
                .is_some_and(name)
        })
        .filter(|(at, _)| {
            token.ends_with('(')
                || !m
                    .get(at + token.len()..)
                    .and_then(|s| s.chars().next())
                    .is_some_and(name)
        })
        .count()
}
