//! The log filter, changeable while the process runs.

use std::sync::{Arc, Mutex};

use tracing_subscriber::{EnvFilter, Registry, reload};

use crate::TraceError;

pub(crate) fn parse(filter: &str) -> Result<EnvFilter, TraceError> {
    EnvFilter::try_new(filter).map_err(|e| TraceError::ParseFilter {
        filter: filter.to_owned(),
        reason: e.to_string(),
    })
}

/// Reads and replaces the active log filter (`RUST_LOG` syntax).
#[derive(Clone)]
pub struct FilterHandle {
    handle: reload::Handle<EnvFilter, Registry>,
    current: Arc<Mutex<String>>,
}

impl std::fmt::Debug for FilterHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FilterHandle")
            .field("current", &self.current())
            .finish()
    }
}

impl FilterHandle {
    pub(crate) fn new(handle: reload::Handle<EnvFilter, Registry>, current: String) -> Self {
        Self {
            handle,
            current: Arc::new(Mutex::new(current)),
        }
    }

    /// The filter in effect.
    pub fn current(&self) -> String {
        self.current
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Replaces the filter; an invalid one is refused and the old one stays.
    pub fn set(&self, filter: &str) -> Result<(), TraceError> {
        let filter = filter.trim();
        let parsed = parse(filter)?;
        self.handle
            .reload(parsed)
            .map_err(|e| TraceError::ReloadFilter(e.to_string()))?;
        *self.current.lock().unwrap_or_else(|e| e.into_inner()) = filter.to_owned();
        tracing::info!(filter, "log filter changed");
        Ok(())
    }
}
