//! The task a caller works on: an id and an objective, declared per call in
//! `_meta["io.mcp-warden/task"]` or carried by the caller's token (a `task` claim). A
//! token's task binds everyone down the delegation chain: a call may narrow it (a sub-task
//! id under it, `T-42/step-1`) but never replace it. It is evidence, like intent, and a
//! scope for grants and session state; it authorises nothing by itself.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Where a call declares its task.
pub const META_KEY: &str = "io.mcp-warden/task";
const MAX_ID: usize = 128;
const MAX_OBJECTIVE: usize = 500;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Task {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub objective: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TaskError {
    #[error(
        "`_meta[\"io.mcp-warden/task\"]` must be {{\"id\": \"…\", \"objective\": \"…\"}} with an id of 1-128 of A-Z a-z 0-9 . _ : / - and an objective of at most 500 characters: {0}"
    )]
    Malformed(String),
    #[error(
        "task `{declared}` is not the task `{granted}` your credential carries, nor part of it (`{granted}/…`): a sub-agent may narrow its task, never replace it"
    )]
    Replaced { declared: String, granted: String },
    #[error(
        "the gateway is keeping as many tasks as it can ({0}); finish or end some (a day without calls ends one), or call without a new task"
    )]
    TooMany(usize),
}

impl Task {
    /// Read a task from JSON (`_meta` or a token claim).
    pub fn parse(value: &Value) -> Result<Self, TaskError> {
        let task: Task = serde_json::from_value(value.clone())
            .map_err(|e| TaskError::Malformed(e.to_string()))?;
        let id_ok = (1..=MAX_ID).contains(&task.id.len())
            && task
                .id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._:/-".contains(c));
        if !id_ok {
            return Err(TaskError::Malformed(format!(
                "id `{}`",
                task.id.escape_default()
            )));
        }
        if task
            .objective
            .as_ref()
            .is_some_and(|o| o.chars().count() > MAX_OBJECTIVE)
        {
            return Err(TaskError::Malformed("the objective is too long".into()));
        }
        Ok(task)
    }

    /// Whether this task is `other` or part of it (`other/…`).
    pub fn within(&self, other: &Task) -> bool {
        within(&self.id, &other.id)
    }
}

/// Whether task id `id` is `parent` or a sub-task of it (`parent/…`).
pub fn within(id: &str, parent: &str) -> bool {
    id == parent
        || id
            .strip_prefix(parent)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// The task of a call: the one it declares, which must lie within the one its credential
/// carries; else the credential's; else none.
pub fn declare(carried: Option<&Task>, meta: Option<&Value>) -> Result<Option<Task>, TaskError> {
    let declared = meta.map(Task::parse).transpose()?;
    match (carried, declared) {
        (None, declared) => Ok(declared),
        (Some(carried), None) => Ok(Some(carried.clone())),
        (Some(carried), Some(declared)) if declared.within(carried) => Ok(Some(declared)),
        (Some(carried), Some(declared)) => Err(TaskError::Replaced {
            declared: declared.id,
            granted: carried.id.clone(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_sub_agent_may_narrow_its_task_but_never_replace_it() {
        let carried = Task::parse(&json!({"id": "T-42", "objective": "migrate"})).unwrap();
        let narrow = json!({"id": "T-42/step-1", "objective": "copy the tickets"});
        assert_eq!(
            declare(Some(&carried), Some(&narrow)).unwrap().unwrap().id,
            "T-42/step-1"
        );
        assert_eq!(
            declare(Some(&carried), None).unwrap(),
            Some(carried.clone())
        );
        for other in ["T-43", "T-420", "T-4"] {
            let err = declare(Some(&carried), Some(&json!({"id": other}))).unwrap_err();
            assert!(matches!(err, TaskError::Replaced { .. }), "{other}: {err}");
        }
        assert_eq!(
            declare(None, Some(&json!({"id": "T-1"})))
                .unwrap()
                .unwrap()
                .id,
            "T-1"
        );
        assert_eq!(declare(None, None).unwrap(), None);
    }

    #[test]
    fn a_malformed_task_says_what_it_must_be() {
        for bad in [
            json!("T-1"),
            json!({"id": ""}),
            json!({"id": "a b"}),
            json!({"id": "x", "extra": 1}),
            json!({"id": "x", "objective": "o".repeat(501)}),
        ] {
            let err = declare(None, Some(&bad)).unwrap_err();
            assert!(matches!(err, TaskError::Malformed(_)), "{bad}: {err}");
        }
    }
}
