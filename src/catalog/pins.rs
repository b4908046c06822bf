//! The definitions tools had when their pins were taken, kept under `<state_dir>/pins/`
//! one file per pin, so a quarantined tool's refusal can name the fields that changed.
//! Only what the pin covers is kept, and a file is believed only if it still digests to
//! its pin. It decides nothing: a missing file just means the changed fields are unknown.
//! With replicas on a shared state database, what one replica kept is also kept there, and
//! a replica that meets a drifted tool whose pinned definition it never saw itself (it
//! started after the drift) fetches it from there, believed on the same terms.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use serde_json::Value;

use crate::digest;

/// Pinned tool definitions on disk, by pin.
#[derive(Debug)]
pub struct PinStore {
    dir: PathBuf,
    /// Pins already on disk (saves a write per refresh).
    known: Mutex<HashSet<String>>,
    /// Pins kept here and not yet in a shared state database (none is collected without
    /// one).
    unshared: Option<Mutex<Vec<(String, Value)>>>,
}

impl PinStore {
    pub fn new(state_dir: &Path) -> Self {
        Self {
            dir: state_dir.join("pins"),
            known: Mutex::new(HashSet::new()),
            unshared: None,
        }
    }

    /// The same, for a gateway whose replicas share what they keep (see [`share`]).
    ///
    /// [`share`]: PinStore::share
    pub fn shared(state_dir: &Path) -> Self {
        Self {
            unshared: Some(Mutex::default()),
            ..Self::new(state_dir)
        }
    }

    /// Put what was kept here since the last time into `store`. A failure is logged and
    /// tried again next time.
    pub async fn share(&self, store: &crate::store::Store) {
        let Some(unshared) = &self.unshared else {
            return;
        };
        let taken = std::mem::take(&mut *unshared.lock().unwrap_or_else(PoisonError::into_inner));
        let mut left = Vec::new();
        for (pin, part) in taken {
            if let Err(e) = store.keep_pin(&pin, part.to_string()).await {
                tracing::warn!(%pin, error = %e, "cannot keep a pinned tool definition in the state database; trying again at the next refresh");
                left.push((pin, part));
            }
        }
        unshared
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend(left);
    }

    /// Fetch the definition kept under `pin` from `store` when there is none here (a
    /// replica that never saw it), believed only if it digests to its pin.
    pub async fn fetch(&self, store: &crate::store::Store, pin: &str) {
        if self.recall(pin).is_some() {
            return;
        }
        let Some(path) = self.file_of(pin) else {
            return;
        };
        let kept = match store.pin(pin).await {
            Ok(kept) => kept,
            Err(e) => {
                tracing::warn!(%pin, error = %e, "cannot read a pinned tool definition from the state database");
                return;
            }
        };
        let Some(definition) = kept.and_then(|t| serde_json::from_str::<Value>(&t).ok()) else {
            return;
        };
        if digest::tool_pin(&definition) != pin {
            tracing::warn!(%pin, "the state database's definition for this pin does not digest to it; it is not used");
            return;
        }
        if let Err(e) = write(&path, &definition) {
            tracing::warn!(path = %path.display(), error = %e, "cannot keep a pinned tool definition");
        }
    }

    /// Keep `definition` under its pin (once). A failure is logged: it only costs a
    /// later refusal its list of changed fields.
    pub fn remember(&self, definition: &Value) {
        let part = digest::pinned_part(definition);
        let pin = digest::canonical(&part);
        if self.known.lock().is_ok_and(|k| k.contains(&pin)) {
            return;
        }
        let Some(path) = self.file_of(&pin) else {
            return;
        };
        if let Err(e) = write(&path, &part) {
            tracing::warn!(path = %path.display(), error = %e, "cannot keep a pinned tool definition");
            return;
        }
        if let Some(unshared) = &self.unshared {
            unshared
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push((pin.clone(), part));
        }
        if let Ok(mut known) = self.known.lock() {
            known.insert(pin);
        }
    }

    /// The definition kept under `pin`, if there is one and it still matches.
    pub fn recall(&self, pin: &str) -> Option<Value> {
        let text = std::fs::read_to_string(self.file_of(pin)?).ok()?;
        let definition: Value = serde_json::from_str(&text).ok()?;
        (digest::tool_pin(&definition) == pin).then_some(definition)
    }

    /// `<dir>/<hex>.json` for a well-formed `sha256:<hex>` pin, else `None`.
    fn file_of(&self, pin: &str) -> Option<PathBuf> {
        let hex = pin.strip_prefix("sha256:")?;
        let well_formed = hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit());
        well_formed.then(|| self.dir.join(format!("{hex}.json")))
    }
}

/// Write through a temporary file and a rename, so a reader never sees half a file.
fn write(path: &Path, definition: &Value) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, serde_json::to_vec_pretty(definition)?)?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_remembered_definition_is_recalled_by_its_pin_and_a_tampered_one_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let store = PinStore::new(dir.path());
        let tool = json!({"name": "t", "title": "not pinned", "description": "d"});
        store.remember(&tool);
        let pin = digest::tool_pin(&tool);
        assert_eq!(
            store.recall(&pin),
            Some(json!({"name": "t", "description": "d"}))
        );
        let file = store.file_of(&pin).unwrap();
        std::fs::write(&file, r#"{"name": "t", "description": "other"}"#).unwrap();
        assert_eq!(
            store.recall(&pin),
            None,
            "a file that no longer digests to its pin"
        );
        assert_eq!(store.recall("sha256:../../etc/passwd"), None);
    }
}
