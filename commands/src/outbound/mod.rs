//! Outbound webhooks to customers' systems, per the Standard Webhooks specification: endpoints are
//! an aggregate (`blazz_domain::endpoint`), the `webhooks` projector enqueues one delivery per
//! (endpoint, event) from the log, and the [`deliver::Deliverer`] sends them, signed with the
//! endpoint's [`secrets`], only to public addresses unless allowed ([`guard`]).

pub mod deliver;
pub mod guard;
pub mod secrets;
pub mod sign;
