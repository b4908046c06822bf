//! Grants over the state store, and the in-memory [`GrantBook`] of active grants that
//! decisions read, refreshed after every change. Revoking and expiring are plain rules
//! over a [`Grant`] that the store applies atomically.

use std::sync::Arc;

use super::{Grant, GrantBook, GrantStatus};
use crate::store::{GrantRow, Store};

#[derive(Debug, thiserror::Error)]
#[error("the grant store failed: {0}")]
pub struct StoreError(String);

impl From<crate::store::StoreError> for StoreError {
    fn from(e: crate::store::StoreError) -> Self {
        Self(e.to_string())
    }
}

/// Grants in the state database, and the book decisions read.
pub struct Grants {
    store: Arc<Store>,
    book: Arc<GrantBook>,
}

impl Grants {
    /// The grants in `store`, with the book filled from them.
    pub async fn open(store: Arc<Store>) -> Result<Self, StoreError> {
        let grants = Self {
            store,
            book: Arc::default(),
        };
        grants.refresh().await?;
        Ok(grants)
    }

    /// The book decisions consult.
    pub fn book(&self) -> Arc<GrantBook> {
        self.book.clone()
    }

    /// Store a new, active grant; it takes effect at once.
    pub async fn insert(&self, grant: &Grant) -> Result<(), StoreError> {
        self.store.insert_grant(to_row(grant)).await?;
        self.refresh().await
    }

    /// Revoke an active grant; `None` when there is no active grant `id`.
    pub async fn revoke(&self, id: &str, by: &str) -> Result<Option<Grant>, StoreError> {
        let by = by.to_string();
        let revoked = self
            .change(id, move |g| {
                let active = g.status == GrantStatus::Active;
                if active {
                    g.status = GrantStatus::Revoked;
                    g.revoked_by = Some(by);
                }
                active
            })
            .await?;
        self.refresh().await?;
        Ok(revoked)
    }

    /// Mark active grants past their expiry as expired; the ones it marked.
    pub async fn sweep(&self, now: u64) -> Result<Vec<Grant>, StoreError> {
        let due: Vec<Grant> = self
            .list()
            .await?
            .into_iter()
            .filter(|g| g.status == GrantStatus::Active && g.expires <= now)
            .collect();
        let mut expired = Vec::new();
        for g in due {
            let marked = self
                .change(&g.id, move |g| {
                    let due = g.status == GrantStatus::Active && g.expires <= now;
                    if due {
                        g.status = GrantStatus::Expired;
                    }
                    due
                })
                .await?;
            expired.extend(marked);
        }
        if !expired.is_empty() {
            self.refresh().await?;
        }
        Ok(expired)
    }

    pub async fn get(&self, id: &str) -> Result<Option<Grant>, StoreError> {
        self.store.grant(id).await?.map(from_row).transpose()
    }

    /// Every grant, newest first.
    pub async fn list(&self) -> Result<Vec<Grant>, StoreError> {
        let rows = self.store.grants().await?;
        rows.into_iter().map(from_row).collect()
    }

    /// Apply `rule` to grant `id` atomically; the grant as written if the rule made its
    /// change (returned `true`).
    async fn change(
        &self,
        id: &str,
        rule: impl FnOnce(&mut Grant) -> bool + Send + 'static,
    ) -> Result<Option<Grant>, StoreError> {
        let updated = self
            .store
            .update_grant(id, move |row| {
                let mut grant = from_row(row.clone())?;
                let changed = rule(&mut grant);
                *row = to_row(&grant);
                Ok::<_, StoreError>(changed.then_some(grant))
            })
            .await?;
        match updated {
            Some((_, result)) => result,
            None => Ok(None),
        }
    }

    /// Read the active grants into the book again (after a change here, or another
    /// replica's).
    pub async fn refresh(&self) -> Result<(), StoreError> {
        let active: Vec<Grant> = self
            .list()
            .await?
            .into_iter()
            .filter(|g| g.status == GrantStatus::Active)
            .collect();
        self.book.replace(active);
        Ok(())
    }

    /// Whether the store is shared with other replicas (their grants change under us).
    pub fn shared(&self) -> bool {
        self.store.shared()
    }

    /// Whether grant `id` is still in force at `now`, as the store says now.
    pub async fn in_force(&self, id: &str, now: u64) -> Result<bool, StoreError> {
        Ok(self
            .get(id)
            .await?
            .is_some_and(|g| g.status == GrantStatus::Active && g.expires > now))
    }
}

fn to_row(g: &Grant) -> GrantRow {
    GrantRow {
        id: g.id.clone(),
        grantee: g.to.clone(),
        on_behalf_of: g.on_behalf_of.clone(),
        tools: g.tools.clone(),
        tier: g.tier.as_str().to_string(),
        reason: g.reason.clone(),
        granted_by: g.by.clone(),
        created: g.created,
        expires: g.expires,
        status: g.status.as_str().to_string(),
        revoked_by: g.revoked_by.clone(),
        task: g.task.clone(),
    }
}

fn from_row(row: GrantRow) -> Result<Grant, StoreError> {
    let bad = |what: &str, value: &str| {
        StoreError(format!("grant `{}`: unknown {what} `{value}`", row.id))
    };
    let tier = row.tier.parse().map_err(|_| bad("tier", &row.tier))?;
    let status = match row.status.as_str() {
        "active" => GrantStatus::Active,
        "revoked" => GrantStatus::Revoked,
        "expired" => GrantStatus::Expired,
        other => return Err(bad("status", other)),
    };
    Ok(Grant {
        id: row.id,
        to: row.grantee,
        on_behalf_of: row.on_behalf_of,
        tools: row.tools,
        tier,
        reason: row.reason,
        by: row.granted_by,
        created: row.created,
        expires: row.expires,
        status,
        revoked_by: row.revoked_by,
        task: row.task,
    })
}
