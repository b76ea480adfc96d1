//! Outbound webhook settings for tests, shared by the in-process servers and the separate
//! deliverer process (`blazz-test-deliverer`).

use blazz_commands::outbound::deliver::DeliverySettings;
use std::time::Duration;

/// Quick retries (three, 100 ms apart), frequent polls, a short lease past `timeout`.
pub fn quick_delivery(allow_private: bool, timeout: Duration) -> DeliverySettings {
    DeliverySettings {
        allow_private,
        timeout,
        lease_margin: Duration::from_millis(200),
        schedule: vec![Duration::from_millis(100); 3],
        poll: Duration::from_millis(10),
        ..DeliverySettings::default()
    }
}
