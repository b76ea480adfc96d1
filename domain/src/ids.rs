//! Identifiers: one newtype per aggregate, so a contact id can never be passed where a channel id is
//! expected. Ids are generated outside the domain (time and randomness are inputs).

use serde::{Deserialize, Serialize};
use std::fmt;
use uuid::Uuid;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            pub const fn from_uuid(id: Uuid) -> Self {
                Self(id)
            }
            pub const fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl From<Uuid> for $name {
            fn from(id: Uuid) -> Self {
                Self(id)
            }
        }
    };
}

id_type!(
    /// A tenant.
    WorkspaceId
);
id_type!(
    /// An API key (its public part; the secret is never in the domain).
    ApiKeyId
);
id_type!(
    /// A WhatsApp sender number.
    ChannelId
);
id_type!(
    /// A contact of a workspace.
    ContactId
);
id_type!(
    /// A contact group.
    GroupId
);
id_type!(
    /// A message template.
    TemplateId
);
id_type!(
    /// One message (inbound or outbound).
    MessageId
);
id_type!(
    /// The conversation of one contact on one channel.
    ConversationId
);
id_type!(
    /// A campaign.
    CampaignId
);
id_type!(
    /// A person working the inbox.
    AgentId
);
id_type!(
    /// A team of agents sharing an inbox.
    TeamId
);
id_type!(
    /// A private note on a conversation.
    NoteId
);

/// Namespace for deriving conversation ids, so that the conversation of a (channel, contact) pair
/// can be found without a lookup.
const CONVERSATION_NAMESPACE: Uuid = Uuid::from_u128(0x6d1f_5a0e_3b7c_4c1d_9e2a_b1c3_d4e5_f607);

impl ConversationId {
    /// The one conversation of `contact` on `channel`.
    pub fn for_pair(channel: ChannelId, contact: ContactId) -> Self {
        let mut name = [0u8; 32];
        name[..16].copy_from_slice(channel.as_uuid().as_bytes());
        name[16..].copy_from_slice(contact.as_uuid().as_bytes());
        Self(Uuid::new_v5(&CONVERSATION_NAMESPACE, &name))
    }
}

const INBOUND_NAMESPACE: Uuid = Uuid::from_u128(0x2b8e_91d4_7f03_4a6c_8d15_e0f2_a3b4_c5d6);

impl MessageId {
    /// The id of an inbound message: derived from the receiving channel and the provider's message id,
    /// so a redelivered webhook names the same message.
    pub fn for_inbound(channel: ChannelId, provider_message_id: &str) -> Self {
        let mut name = channel.as_uuid().as_bytes().to_vec();
        name.extend_from_slice(provider_message_id.as_bytes());
        Self(Uuid::new_v5(&INBOUND_NAMESPACE, &name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversation_id_is_stable_and_pair_specific() {
        let ch = ChannelId::from_uuid(Uuid::from_u128(1));
        let c1 = ContactId::from_uuid(Uuid::from_u128(2));
        let c2 = ContactId::from_uuid(Uuid::from_u128(3));
        assert_eq!(ConversationId::for_pair(ch, c1), ConversationId::for_pair(ch, c1));
        assert_ne!(ConversationId::for_pair(ch, c1), ConversationId::for_pair(ch, c2));
    }
}
