//! Shared state of the gateway: one `Clone` struct of cheap handles.

use blazz_commands::Commands;
use std::sync::Arc;

#[derive(Clone, Debug)]
pub struct AppState {
    pub commands: Commands,
    /// Token for operator-only routes (creating workspaces, recording template reviews). Without one
    /// those routes answer 403.
    pub operator_token: Option<Arc<str>>,
}
