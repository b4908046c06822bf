//! Log levels on the upstreams: `logging/setLevel` sent to every running upstream that
//! offers logging. Log entries themselves arrive as [`super::UpstreamEvent::Log`].
#![allow(deprecated)] // logging is deprecated by SEP-2577 but real servers still use it

use rmcp::model::{LoggingLevel, SetLevelRequestParams};

use super::Upstreams;

impl Upstreams {
    /// Ask every upstream that offers logging to send entries at `level` and above.
    /// Upstreams that are down or refuse are skipped (logged), never an error.
    pub async fn set_level(&self, level: LoggingLevel) {
        for server in self.ids() {
            let Ok(Some(service)) = self.offering(server, |c| c.logging.is_some()).await else {
                continue;
            };
            if let Err(e) = service
                .peer()
                .set_level(SetLevelRequestParams::new(level))
                .await
            {
                tracing::debug!(server = %server, error = %e, "upstream refused logging/setLevel");
            }
        }
    }
}
