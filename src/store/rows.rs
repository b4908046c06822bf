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

/// One token asked of a rate limit's bucket: the rule's key and the identity it counts,
/// and how the bucket fills (`rate` tokens a second, up to `burst`).
#[derive(Debug, Clone, PartialEq)]
pub struct BucketAsk {
    pub rule: String,
    pub identity: String,
    pub rate: f64,
    pub burst: f64,
}

/// A bucket as kept: its tokens when it was last touched, and when (Unix ms).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bucket {
    pub tokens: f64,
    pub at: u64,
}

impl Bucket {
    /// `asked`'s bucket at `now`: `kept` (or a full one) topped up.
    pub fn at(kept: Option<Bucket>, asked: &BucketAsk, now: u64) -> Self {
        match kept {
            Some(b) => {
                let elapsed = now.saturating_sub(b.at) as f64 / 1000.0;
                Self {
                    tokens: (b.tokens + elapsed * asked.rate).min(asked.burst),
                    at: now.max(b.at),
                }
            }
            None => Self {
                tokens: asked.burst,
                at: now,
            },
        }
    }
}

/// Take a token from each of `buckets` (topped up to `now`), or from none: `None` when
/// all had one (and the buckets as they are now), else the first empty one's index and
/// its tokens.
pub fn spend(buckets: &mut [Bucket]) -> Option<(usize, f64)> {
    if let Some((i, empty)) = buckets.iter().enumerate().find(|(_, b)| b.tokens < 1.0) {
        return Some((i, empty.tokens));
    }
    for b in buckets.iter_mut() {
        b.tokens -= 1.0;
    }
    None
}
