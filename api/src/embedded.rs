//! The private PostgreSQL cluster of `blazz up`: initialised under the data directory from the server
//! binaries installed on the machine, started on a free loopback port, stopped on shutdown.
//! PostgreSQL refuses to run as root, so as root the cluster runs as the `postgres` system user.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use tokio::process::Command;

#[derive(Debug, thiserror::Error)]
pub enum EmbeddedError {
    #[error(
        "PostgreSQL server binaries (initdb, pg_ctl) were not found. Install them (Debian/Ubuntu: \
         `apt-get install postgresql`, Fedora: `dnf install postgresql-server`, macOS: `brew install postgresql`), \
         point PG_BIN_DIR at their directory, or set DATABASE_URL to use an existing server."
    )]
    NoBinaries,
    #[error("running as root, PostgreSQL must run as the `postgres` user, which does not exist; create it or run blazz as a normal user")]
    NoPostgresUser,
    #[error(
        "the `postgres` user cannot write {0}; choose a BLAZZ_DATA_DIR it can reach, or run blazz as a normal user"
    )]
    Unreachable(PathBuf),
    #[error("{step} failed: {detail}")]
    Step { step: &'static str, detail: String },
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// A running private cluster.
#[derive(Debug)]
pub struct EmbeddedPostgres {
    pgdata: PathBuf,
    bin_dir: PathBuf,
    port: u16,
    run_as: Option<(u32, u32)>,
}

fn find_bin_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("PG_BIN_DIR").map(PathBuf::from) {
        return dir.join("initdb").exists().then_some(dir);
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
        .collect();
    versions.sort();
    let mut candidates: Vec<PathBuf> = versions.into_iter().rev().map(|(_, p)| p).collect();
    candidates.push("/usr/local/pgsql/bin".into());
    candidates
        .extend(std::env::var_os("PATH").map(|p| std::env::split_paths(&p).collect::<Vec<_>>()).unwrap_or_default());
    candidates.into_iter().find(|d| d.join("initdb").is_file() && d.join("pg_ctl").is_file())
}

async fn output(cmd: &mut Command, step: &'static str) -> Result<String, EmbeddedError> {
    let out = cmd.output().await.map_err(|e| EmbeddedError::Step { step, detail: e.to_string() })?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    } else {
        let detail =
            format!("{}{}", String::from_utf8_lossy(&out.stderr).trim(), String::from_utf8_lossy(&out.stdout).trim());
        Err(EmbeddedError::Step { step, detail })
    }
}

async fn id(args: &[&str]) -> Option<u32> {
    output(Command::new("id").args(args), "id").await.ok()?.parse().ok()
}

fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl EmbeddedPostgres {
    fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(self.bin_dir.join(program));
        if let Some((uid, gid)) = self.run_as {
            cmd.uid(uid).gid(gid);
        }
        cmd.kill_on_drop(false);
        cmd
    }

    /// Initialises (first time) and starts the cluster in `<data_dir>/postgres`.
    pub async fn start(data_dir: &Path) -> Result<Self, EmbeddedError> {
        let bin_dir = find_bin_dir().ok_or(EmbeddedError::NoBinaries)?;
        let run_as = if id(&["-u"]).await == Some(0) {
            match (id(&["-u", "postgres"]).await, id(&["-g", "postgres"]).await) {
                (Some(u), Some(g)) => Some((u, g)),
                _ => return Err(EmbeddedError::NoPostgresUser),
            }
        } else {
            None
        };
        std::fs::create_dir_all(data_dir)?;
        let pgdata = std::path::absolute(data_dir.join("postgres"))?;
        std::fs::create_dir_all(&pgdata)?;
        let pg = Self { pgdata, bin_dir, port: free_port()?, run_as };
        if let Some((uid, gid)) = run_as {
            std::os::unix::fs::chown(&pg.pgdata, Some(uid), Some(gid))?;
            let mut probe = Command::new("test");
            probe.arg("-w").arg(&pg.pgdata).uid(uid).gid(gid);
            if !probe.status().await.is_ok_and(|s| s.success()) {
                return Err(EmbeddedError::Unreachable(pg.pgdata.clone()));
            }
        }
        if !pg.pgdata.join("PG_VERSION").exists() {
            tracing::info!(dir = %pg.pgdata.display(), "initialising the private PostgreSQL cluster");
            output(
                pg.command("initdb").arg("-D").arg(&pg.pgdata).args(["-U", "blazz", "--auth=trust", "-E", "UTF8"]),
                "initdb",
            )
            .await?;
        }
        // A cluster left running by a killed process: stop it, then start on a fresh port.
        if pg.command("pg_ctl").arg("-D").arg(&pg.pgdata).arg("status").output().await.is_ok_and(|o| o.status.success())
        {
            pg.stop().await;
        }
        let options = format!("-c listen_addresses=127.0.0.1 -c port={} -c unix_socket_directories=''", pg.port);
        output(
            pg.command("pg_ctl")
                .arg("-D")
                .arg(&pg.pgdata)
                .arg("-l")
                .arg(pg.pgdata.join("server.log"))
                .args(["-w", "-t", "60", "start", "-o", &options]),
            "pg_ctl start",
        )
        .await?;
        tracing::info!(port = pg.port, "private PostgreSQL cluster started");
        Ok(pg)
    }

    /// The URL of the private cluster a running `blazz up` started under `data_dir`, if any (its port
    /// is line 4 of `postmaster.pid`).
    pub fn running_url(data_dir: &Path) -> Option<String> {
        let pid = std::fs::read_to_string(data_dir.join("postgres").join("postmaster.pid")).ok()?;
        let port: u16 = pid.lines().nth(3)?.trim().parse().ok()?;
        Some(format!("postgres://blazz@127.0.0.1:{port}/postgres"))
    }

    pub fn url(&self) -> String {
        format!("postgres://blazz@127.0.0.1:{}/postgres", self.port)
    }

    pub async fn stop(&self) {
        let stopped = output(
            self.command("pg_ctl").arg("-D").arg(&self.pgdata).args(["-m", "fast", "-w", "stop"]),
            "pg_ctl stop",
        )
        .await;
        if let Err(e) = stopped {
            tracing::warn!(error = %e, "stopping the private PostgreSQL cluster");
        }
    }
}
