//! Crypto-shredding of personal data (docs/adr/0003-personal-data.md).
//!
//! Personal fields of events ([`fields::PERSONAL`]) are sealed with their contact's data key before
//! they are appended, and opened again when read; erasing a contact destroys its key, so from then
//! on every reader sees those fields as erased while the log itself is never rewritten (its hash
//! chain covers the sealed form and stays valid).
//!
//! - [`fields`]: which fields, whose, and the sealed form.
//! - [`vault`]: the data keys, sealed with the deployment key, cached.
//! - [`tree`]: the key tree new contacts' keys derive from, punctured on erasure (pure);
//!   `nodes`: its stored nodes.
//! - [`store`]: an [`crate::store::EventStore`] that seals on append and opens on read, so every
//!   reader through it (projections, rebuilds, history, as-of, exports, the write side) sees the same.
//!
//! Events written before sealing existed hold their personal fields in clear; they read as they are
//! until their contact is erased, and as erased after (an upcaster at read time, not a rewrite).

pub mod fields;
mod nodes;
pub mod store;
pub mod tree;
pub mod vault;

#[cfg(test)]
mod tests;

use crate::store::{AppendRequest, ExpectedVersion, RecordedEvent, StoreError};
use fields::{sealed_entry, DataKey, SEALED};
use std::collections::HashMap;
pub use store::PersonalStore;
use uuid::Uuid;
pub use vault::{Slot, Vault};

/// The event that erases a contact.
pub const ERASED: &str = "contact.erased";

impl Vault {
    /// Seals the personal fields of every request's events. A request that creates a contact's stream
    /// takes the contact's key from its workspace's tree (no row of its own: nothing to store with
    /// the events); other contacts' keys are looked up (a row of their own, or the tree). A field of
    /// an erased contact is written erased.
    pub async fn protect(&self, requests: &mut [AppendRequest]) -> Result<(), StoreError> {
        let mut creating: Vec<(Uuid, Uuid)> = vec![];
        let mut wanted: HashMap<Uuid, Vec<Uuid>> = HashMap::new();
        for r in requests.iter() {
            for e in &r.events {
                let Some(c) = fields::of(&e.event_type).and_then(|p| p.subject(&r.stream_id, &e.payload)) else {
                    continue;
                };
                match e.event_type == "contact.created" && r.expected == ExpectedVersion::NoStream {
                    true => creating.push((r.workspace_id, c)),
                    false => wanted.entry(r.workspace_id).or_default().push(c),
                }
            }
        }
        // A new contact has no row (contact ids are never reused): its key is its tree's, cached.
        let mut slots = self.tree_keys(&creating).await?;
        for (workspace, mut contacts) in wanted {
            contacts.retain(|c| !slots.contains_key(c));
            if !contacts.is_empty() {
                slots.extend(self.ensure(workspace, &contacts).await?);
            }
        }
        for r in requests.iter_mut() {
            for e in &mut r.events {
                let Some(p) = fields::of(&e.event_type) else { continue };
                let Some(c) = p.subject(&r.stream_id, &e.payload) else { continue };
                let Some(slot) = slots.get(&c) else { continue };
                if e.payload.get(SEALED).is_some() {
                    continue;
                }
                // Each present field gives its value up and keeps its blank.
                let (mut names, mut values) = (vec![], vec![]);
                for (path, blank) in p.fields {
                    if let Some(v) = e.payload.pointer_mut(path).filter(|v| !v.is_null()) {
                        names.push(*path);
                        values.push(std::mem::replace(v, blank.value()));
                    }
                }
                if let (Slot::Open(key), false, Some(map)) = (slot, names.is_empty(), e.payload.as_object_mut()) {
                    map.insert(SEALED.into(), key.seal(c, &e.event_type, &names, &values));
                }
            }
        }
        Ok(())
    }

    /// Opens the personal fields of `events`; a field whose key is gone (or that does not open) reads
    /// as its blank and is listed in the event's `erased`. A clear field (an event from before
    /// sealing) stays as it is unless its contact was erased.
    pub async fn reveal(&self, events: &mut [RecordedEvent]) -> Result<(), StoreError> {
        self.reveal_in(events, |e| e).await
    }

    /// [`Self::reveal`] for the events inside `items` (a feed's batch).
    pub async fn reveal_in<T: Send>(
        &self,
        items: &mut [T],
        record: fn(&mut T) -> &mut RecordedEvent,
    ) -> Result<(), StoreError> {
        let mut subjects = vec![];
        for item in items.iter_mut() {
            let e = record(item);
            if e.event_type == ERASED {
                if let Some(c) = fields::contact_of_stream(&e.stream_id) {
                    // Whatever this process cached for it is stale.
                    self.remember(c, Slot::Erased);
                }
            }
            if let Some(c) = fields::of(&e.event_type).and_then(|p| p.subject(&e.stream_id, &e.payload)) {
                subjects.push((e.workspace_id, c));
            }
        }
        if subjects.is_empty() {
            return Ok(());
        }
        let slots = self.slots(&subjects).await?;
        for item in items.iter_mut() {
            let e = record(item);
            let Some(p) = fields::of(&e.event_type) else { continue };
            let Some(c) = p.subject(&e.stream_id, &e.payload) else { continue };
            let slot = slots.get(&c);
            let Some((names, text)) = sealed_entry(&e.payload).map(|(n, t)| (n, t.to_owned())) else {
                // Written before sealing: in clear, unless the contact was erased since.
                if matches!(slot, Some(Slot::Erased)) {
                    for (path, blank) in p.fields {
                        if let Some(v) = e.payload.pointer_mut(path).filter(|v| !v.is_null()) {
                            *v = blank.value();
                            e.erased.push(path);
                        }
                    }
                }
                continue;
            };
            if let Some(map) = e.payload.as_object_mut() {
                map.remove(SEALED);
            }
            let mut opened = match slot {
                Some(Slot::Open(key)) => {
                    let opened = key.open(c, &e.event_type, &names, &text);
                    if opened.is_none() {
                        tracing::warn!(position = e.position, "sealed personal fields do not open");
                    }
                    opened
                }
                // The key is gone (or was never stored): the blanks stay.
                _ => None,
            };
            for (path, _) in p.fields {
                let Some(at) = names.iter().position(|n| n == path) else { continue };
                match (&mut opened, e.payload.pointer_mut(path)) {
                    (Some(values), Some(v)) => *v = std::mem::take(&mut values[at]),
                    _ => e.erased.push(path),
                }
            }
        }
        Ok(())
    }
}
