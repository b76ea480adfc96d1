//! What a provider's error code means for us: retry later, give up on this message, stop the campaign,
//! or halt the channel. The table is Meta's (see `meta-cloud-api.md`); classification looks at the
//! code only, never at the HTTP status or the title.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

/// How old a provider's timestamp may be: Meta redelivers a webhook for up to 7 days, so a month
/// leaves room for a backlog replayed by an operator.
pub const TIMESTAMP_MAX_AGE: Duration = Duration::days(30);
/// How far ahead of our clock a provider's timestamp may be (clock skew).
pub const TIMESTAMP_MAX_AHEAD: Duration = Duration::minutes(10);

/// Accepts a provider's timestamp only inside the window around `now` ([`TIMESTAMP_MAX_AGE`] before,
/// [`TIMESTAMP_MAX_AHEAD`] after); outside it, says why. A timestamp far outside would otherwise
/// travel into the log and into arithmetic (service windows) and read models.
pub fn check_timestamp(at: DateTime<Utc>, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    let oldest = now.checked_sub_signed(TIMESTAMP_MAX_AGE).unwrap_or(DateTime::<Utc>::MIN_UTC);
    let newest = now.checked_add_signed(TIMESTAMP_MAX_AHEAD).unwrap_or(DateTime::<Utc>::MAX_UTC);
    if at < oldest {
        Err(format!("timestamp {at} is more than {} days old", TIMESTAMP_MAX_AGE.num_days()))
    } else if at > newest {
        Err(format!("timestamp {at} is more than {} minutes ahead of our clock", TIMESTAMP_MAX_AHEAD.num_minutes()))
    } else {
        Ok(at)
    }
}

/// The four consequences of a provider error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    /// Nothing was sent; try again later (with backoff, see [`Backoff`]).
    RetryLater,
    /// This message will not be sent; retrying cannot help.
    Final,
    /// The template cannot be used any more: campaigns using it must stop.
    StopCampaign,
    /// The channel cannot send (authentication or policy): stop all its sends until fixed.
    HaltChannel,
}

impl ErrorClass {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::RetryLater => "retry_later",
            Self::Final => "final",
            Self::StopCampaign => "stop_campaign",
            Self::HaltChannel => "halt_channel",
        }
    }
}

/// Whom a retry-later error asks to slow down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backoff {
    /// The number's throughput or the business's spam rate: slow the whole channel.
    Channel,
    /// The (business, recipient) pair limit: wait before writing to this recipient again (4^n s).
    Recipient,
    /// An account or app limit, maintenance or a transient error: plain exponential backoff.
    Standard,
}

/// Codes that halt a channel: authentication (0, 190) and policy blocks (368, 131031).
const HALT_CHANNEL: &[i64] = &[0, 190, 368, 131031];
/// Template paused or disabled.
const STOP_CAMPAIGN: &[i64] = &[132015, 132016];
/// Retry later, with whom to slow down.
const RETRY: &[(i64, Backoff)] = &[
    (130429, Backoff::Channel),
    (131048, Backoff::Channel),
    (131056, Backoff::Recipient),
    (80007, Backoff::Standard),
    (4, Backoff::Standard),
    (131057, Backoff::Standard),
    (1, Backoff::Standard),
    (2, Backoff::Standard),
    (131000, Backoff::Standard),
];

/// The recipient stopped marketing messages: the contact is opted out of marketing.
pub const MARKETING_STOPPED: i64 = 131050;

/// Classifies a provider error code. Codes not in the table are final: an unknown failure is recorded
/// with its code and details rather than retried blindly.
pub fn classify(code: i64) -> ErrorClass {
    if HALT_CHANNEL.contains(&code) {
        ErrorClass::HaltChannel
    } else if STOP_CAMPAIGN.contains(&code) {
        ErrorClass::StopCampaign
    } else if RETRY.iter().any(|(c, _)| *c == code) {
        ErrorClass::RetryLater
    } else {
        ErrorClass::Final
    }
}

/// For a retry-later code, whom to slow down.
pub fn backoff(code: i64) -> Option<Backoff> {
    RETRY.iter().find(|(c, _)| *c == code).map(|(_, b)| *b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_timestamps_are_accepted_only_near_now() {
        let now = DateTime::from_timestamp(1_790_000_000, 0).unwrap();
        assert!(check_timestamp(now, now).is_ok());
        assert!(check_timestamp(now - Duration::days(29), now).is_ok());
        assert!(check_timestamp(now - Duration::days(31), now).is_err());
        assert!(check_timestamp(now + Duration::minutes(9), now).is_ok());
        assert!(check_timestamp(now + Duration::minutes(11), now).is_err());
        assert!(check_timestamp(DateTime::<Utc>::MAX_UTC, now).is_err());
        assert!(check_timestamp(DateTime::<Utc>::MIN_UTC, DateTime::<Utc>::MIN_UTC).is_ok());
    }

    #[test]
    fn every_code_of_the_table_has_its_class() {
        for code in [130429, 131056, 80007, 4, 131048, 131057, 1, 2, 131000] {
            assert_eq!(classify(code), ErrorClass::RetryLater, "{code}");
        }
        for code in [131047, 131026, 131049, 131050, 131052, 132000, 132001] {
            assert_eq!(classify(code), ErrorClass::Final, "{code}");
        }
        for code in [132015, 132016] {
            assert_eq!(classify(code), ErrorClass::StopCampaign, "{code}");
        }
        for code in [0, 190, 368, 131031] {
            assert_eq!(classify(code), ErrorClass::HaltChannel, "{code}");
        }
    }

    #[test]
    fn unknown_codes_are_final_and_backoff_names_whom_to_slow() {
        assert_eq!(classify(999_999), ErrorClass::Final);
        assert_eq!(backoff(130429), Some(Backoff::Channel));
        assert_eq!(backoff(131056), Some(Backoff::Recipient));
        assert_eq!(backoff(131000), Some(Backoff::Standard));
        assert_eq!(backoff(131026), None);
    }
}
