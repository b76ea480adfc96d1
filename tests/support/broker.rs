//! A real Kafka-protocol broker for a test: `tansu` (memory storage) on a free port of 127.0.0.1, a
//! process of its own so a test can restart it (coming back empty). `./scripts/test` installs it and
//! sets `BLAZZ_TANSU` to its path.

use blazz_projections::kafka::KafkaConfig;
use std::process::Stdio;
use std::time::Duration;
use tokio::process::{Child, Command};

#[derive(Debug)]
pub struct Broker {
    child: Child,
    port: u16,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port()
}

impl Broker {
    pub async fn start() -> Self {
        Self::start_on(free_port()).await
    }

    async fn start_on(port: u16) -> Self {
        let bin = std::env::var("BLAZZ_TANSU").expect(
            "BLAZZ_TANSU must name the tansu broker binary: run the tests with ./scripts/test, which installs it",
        );
        let url = format!("tcp://127.0.0.1:{port}");
        let child = Command::new(bin)
            .args(["broker", "--listener-url", &url, "--advertised-listener-url", &url])
            .args(["--storage-engine", "memory://tansu/", "--silent"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("tansu starts");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            assert!(tokio::time::Instant::now() < deadline, "tansu did not listen on {port}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Self { child, port }
    }

    /// The broker's address for `KAFKA_BROKERS`.
    pub fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// A configuration for this broker with few partitions (tests are small).
    pub fn config(&self) -> KafkaConfig {
        KafkaConfig { partitions: 4, ..KafkaConfig::new(self.brokers()) }
    }

    /// Kills the broker and starts an empty one on the same port (memory storage keeps nothing).
    pub async fn restart_empty(&mut self) {
        self.child.kill().await.expect("kill tansu");
        let port = self.port;
        *self = Self::start_on(port).await;
    }
}
