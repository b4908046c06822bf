//! The gateway's clock for expiries (approvals, grants): milliseconds since the epoch
//! that never jump with the wall clock and that tests control by pausing tokio's time.

/// Milliseconds since the Unix epoch, as the wall clock read at first use plus tokio's
/// monotonic clock since: expiry never jumps with the wall clock, and tests that pause
/// tokio's time control it.
pub fn now_ms() -> u64 {
    static BASE: std::sync::OnceLock<(u64, std::time::Instant)> = std::sync::OnceLock::new();
    let (wall, start) = *BASE.get_or_init(|| {
        let wall = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0);
        (wall, std::time::Instant::now())
    });
    let since = tokio::time::Instant::now()
        .into_std()
        .saturating_duration_since(start);
    wall.saturating_add(u64::try_from(since.as_millis()).unwrap_or(u64::MAX))
}
