//! The rows both engines keep: approval requests with their verdicts, and grants. A
//! request's call is kept as the JSON `approval` gives it, statuses and tiers as words;
//! verdicts are only ever added.

/// One approval request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestRow {
    pub id: String,
    /// What an approval is good for (the call's tool, arguments and caller).
    pub binding: String,
    /// The parked call, as JSON.
    pub call: String,
    pub status: String,
    pub created: u64,
    pub expires: u64,
    /// In the order they were given.
    pub verdicts: Vec<VerdictRow>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerdictRow {
    pub approver: String,
    pub approve: bool,
    pub comment: Option<String>,
    pub at: u64,
    /// The channel of the principal's own confirmation, when it is one.
    pub confirmed: Option<String>,
}

/// One grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantRow {
    pub id: String,
    pub grantee: String,
    pub on_behalf_of: Option<String>,
    pub tools: String,
    pub tier: String,
    pub reason: String,
    pub granted_by: String,
    pub created: u64,
    pub expires: u64,
    pub status: String,
    pub revoked_by: Option<String>,
    /// Only for calls of this task (or a sub-task of it).
    pub task: Option<String>,
}
