//! The import body as a blocking `Read` fed chunk by chunk from the connection, so a parser on a
//! blocking thread sees the rows as they arrive and can stop reading at any point (the row limit, a
//! row or a body too large). It hashes what it reads for the idempotency fingerprint and meters it.

use axum::body::{Body, Bytes};
use futures::StreamExt;
use sha2::{Digest, Sha256};
use std::cell::Cell;
use std::io::{self, Read};
use std::rc::Rc;
use tokio::sync::mpsc;

/// Chunks in flight between the connection and the parser.
const CHANNEL_CHUNKS: usize = 8;

/// Why reading stopped early.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overrun {
    /// The body passed the route's limit.
    Body,
    /// One row passed [`super::ROW_LIMIT`].
    Row,
    /// The parser has read more rows than an import may have.
    Rows,
}

/// What has been read, shared between the reader and the parser that marks row boundaries.
#[derive(Debug, Default)]
pub struct Meter {
    read: Cell<usize>,
    row_start: Cell<usize>,
    overrun: Cell<Option<Overrun>>,
}

impl Meter {
    /// A row ends here: the next one is measured from this point.
    pub fn row_done(&self) {
        self.row_start.set(self.read.get());
    }
    pub fn overrun(&self) -> Option<Overrun> {
        self.overrun.get()
    }
    /// The parser has read enough: the reader fails from now on instead of waiting for more of the
    /// body (a parser may look past its last row, e.g. for the end of a JSON array).
    pub fn too_many_rows(&self) {
        self.overrun.set(Some(Overrun::Rows));
    }
}

/// Forwards the request body to the parser until the body ends or the parser hangs up.
pub async fn pump(body: Body, to_parser: mpsc::Sender<io::Result<Bytes>>) {
    let mut stream = body.into_data_stream();
    loop {
        // The parser may stop at any point (the row limit): stop reading then, not at the body's end.
        let chunk = tokio::select! {
            chunk = stream.next() => chunk,
            () = to_parser.closed() => return,
        };
        let Some(chunk) = chunk else { return };
        let chunk = chunk.map_err(io::Error::other);
        let failed = chunk.is_err();
        if to_parser.send(chunk).await.is_err() || failed {
            return;
        }
    }
}

pub struct BodyReader {
    from_pump: mpsc::Receiver<io::Result<Bytes>>,
    current: Bytes,
    hasher: Option<Sha256>,
    meter: Rc<Meter>,
    body_limit: usize,
    row_limit: usize,
}

impl BodyReader {
    pub fn new(
        from_pump: mpsc::Receiver<io::Result<Bytes>>,
        hasher: Option<Sha256>,
        body_limit: usize,
        row_limit: usize,
    ) -> Self {
        Self { from_pump, current: Bytes::new(), hasher, meter: Rc::default(), body_limit, row_limit }
    }

    pub fn channel() -> (mpsc::Sender<io::Result<Bytes>>, mpsc::Receiver<io::Result<Bytes>>) {
        mpsc::channel(CHANNEL_CHUNKS)
    }

    pub fn meter(&self) -> Rc<Meter> {
        self.meter.clone()
    }

    /// The hex fingerprint of what was read (the whole body once the parser reached its end).
    pub fn fingerprint(self) -> Option<String> {
        self.hasher.map(|h| hex::encode(h.finalize()))
    }

    fn overrun(&self, what: Overrun) -> io::Error {
        self.meter.overrun.set(Some(what));
        io::Error::new(io::ErrorKind::InvalidData, "import body over its limit")
    }
}

impl Read for BodyReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(overrun) = self.meter.overrun() {
            return Err(self.overrun(overrun));
        }
        while self.current.is_empty() {
            match self.from_pump.blocking_recv() {
                Some(chunk) => self.current = chunk?,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        let chunk = self.current.split_to(n);
        buf[..n].copy_from_slice(&chunk);
        if let Some(h) = &mut self.hasher {
            h.update(&chunk);
        }
        let read = self.meter.read.get() + n;
        self.meter.read.set(read);
        if read > self.body_limit {
            return Err(self.overrun(Overrun::Body));
        }
        if read - self.meter.row_start.get() > self.row_limit {
            return Err(self.overrun(Overrun::Row));
        }
        Ok(n)
    }
}
