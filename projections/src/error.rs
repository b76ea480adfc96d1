//! The read side's error: what stops a batch (the database, the store, a payload, Kafka, a panic, a
//! projector that cannot apply an event).

#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Store(#[from] blazz_commands::store::StoreError),
    #[error(transparent)]
    Codec(#[from] blazz_commands::codec::CodecError),
    #[error("kafka: {0}")]
    Kafka(String),
    #[error("a batch panicked outside the projectors: {0}")]
    Panicked(String),
    /// A projector could not apply an event of the batch (its data, or a panic): the batch is applied
    /// again carefully, parking what fails (see [`crate::parked`]).
    #[error("projection {projection} could not apply the batch: {error}")]
    Poisoned { projection: &'static str, error: String },
}
