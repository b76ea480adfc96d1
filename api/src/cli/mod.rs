//! What the `blazz` binary does besides serving: long jobs with progress.
//!
//! - [`progress`]: a bar with rate and ETA on a terminal, plain lines otherwise.
//! - [`import`]: `blazz import contacts FILE`, a CSV or JSON file sent to a gateway in chunks.
//! - [`audit`]: `blazz audit export`, a workspace's events for an auditor's tools.

pub mod audit;
pub mod import;
pub mod progress;
