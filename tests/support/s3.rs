//! A real S3-compatible server for a test: `s3s-fs` (files under a temporary directory) on a free
//! port of 127.0.0.1, a process of its own. `./scripts/test` installs it (pinned, cached) and sets
//! `BLAZZ_S3S_FS` to its path.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;
use tokio::process::{Child, Command};

#[derive(Debug)]
pub struct S3Server {
    _child: Child,
    pub root: PathBuf,
    pub url: String,
}

pub const BUCKET: &str = "blazz-media";
const ACCESS_KEY: &str = "blazz-test";
const SECRET_KEY: &str = "blazz-test-secret";

impl S3Server {
    pub async fn start() -> Self {
        let bin = std::env::var("BLAZZ_S3S_FS")
            .expect("BLAZZ_S3S_FS must name the s3s-fs binary: run the tests with ./scripts/test, which installs it");
        let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port();
        let root = std::env::temp_dir().join(format!("blazz-s3-{}", uuid::Uuid::now_v7().simple()));
        // A bucket is a directory of the root.
        std::fs::create_dir_all(root.join(BUCKET)).expect("the bucket directory");
        let child = Command::new(bin)
            .args(["--host", "127.0.0.1", "--port", &port.to_string(), "--access-key", ACCESS_KEY])
            .args(["--secret-key", SECRET_KEY])
            .arg(&root)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("s3s-fs starts");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            assert!(tokio::time::Instant::now() < deadline, "s3s-fs did not listen on {port}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Self { _child: child, root, url: format!("http://127.0.0.1:{port}") }
    }

    /// An object store client of the bucket, as `BLAZZ_MEDIA_STORE=s3://…` builds one.
    pub fn store(&self) -> Arc<dyn object_store::ObjectStore> {
        let s3 = object_store::aws::AmazonS3Builder::new()
            .with_endpoint(&self.url)
            .with_bucket_name(BUCKET)
            .with_region("us-east-1")
            .with_access_key_id(ACCESS_KEY)
            .with_secret_access_key(SECRET_KEY)
            .with_allow_http(true)
            .build()
            .expect("an S3 client");
        Arc::new(s3)
    }
}
