//! `decsweep serve`: the coordinator alone, for workers on other machines.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use decsweep_coordinator::{check_bind, Coordinator, CoordinatorOptions, ServerTls};

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The study database (created if missing; resumed if it exists).
    #[arg(long, value_name = "FILE", default_value = "decsweep.db")]
    db: PathBuf,
    /// Address to listen on. Anything but loopback requires --token or --token-file.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8320")]
    bind: SocketAddr,
    /// The bearer token workers and clients must send (--token or --token-file); the
    /// dashboard asks for it once at login.
    #[command(flatten)]
    token: decsweep_connect::TokenArgs,
    /// A second token that may only look: `GET` on /v1 and a view-only dashboard login.
    /// Needs a token.
    #[arg(long, env = "DECSWEEP_READ_TOKEN", hide_env_values = true)]
    read_token: Option<String>,
    /// Serve HTTPS with this PEM certificate chain (server certificate first); needs --tls-key.
    #[arg(long, value_name = "FILE", env = "DECSWEEP_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert (PKCS#8, PKCS#1 or SEC1).
    #[arg(long, value_name = "FILE", env = "DECSWEEP_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Seconds a lease lives without a heartbeat before its trial is handed out again.
    #[arg(long, default_value_t = 60)]
    lease_ttl: u64,
    /// The largest trial checkpoint a worker may upload, in MiB; a larger one is refused (413)
    /// and its trial goes on without it. Checkpoints are kept in the data directory beside the
    /// database, the latest of each unfinished trial only.
    #[arg(long, value_name = "MIB", default_value_t = 1024)]
    max_checkpoint_mb: u64,
    /// The only folder whose dataset files a submitted spec may name (canonical paths, symlinks
    /// resolved; a relative spec path is read from it). Without it, specs naming a dataset file
    /// must upload it, which `decsweep submit` does.
    #[arg(long, value_name = "DIR", env = "DECSWEEP_DATA_ROOT")]
    data_root: Option<PathBuf>,
}

pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    let bad_input = |e: &dyn std::fmt::Display| crate::exit::BadInput(e.to_string());
    let token = args.token.resolve().map_err(|e| bad_input(&e))?;
    check_bind(args.bind, token.as_deref()).map_err(|e| bad_input(&e))?;
    if args.read_token.as_deref().is_some_and(|t| !t.is_empty()) && token.as_deref().is_none_or(str::is_empty) {
        return Err(
            bad_input(&"--read-token needs --token or --token-file (without a token everything is open)").into()
        );
    }
    if let Some(root) = args.data_root.as_deref().filter(|r| !r.is_dir()) {
        return Err(bad_input(&format!("--data-root {} is not a folder", root.display())).into());
    }
    // Checked before the database is opened, so a wrong path costs nothing.
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(ServerTls::from_pem_files(cert, key).map_err(|e| bad_input(&e))?),
        _ => None,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        let options = CoordinatorOptions {
            lease_ttl: Duration::from_secs(args.lease_ttl.max(1)),
            token,
            read_token: args.read_token.clone(),
            max_checkpoint_bytes: args.max_checkpoint_mb.saturating_mul(1 << 20),
            data_root: args.data_root.clone(),
            ..Default::default()
        };
        let coordinator = Coordinator::open(&args.db, options)?;
        let listener = tokio::net::TcpListener::bind(args.bind).await?;
        let scheme = if tls.is_some() { "https" } else { "http" };
        let url = format!("{scheme}://{}", listener.local_addr()?);
        eprintln!("coordinator listening on {url} (database {}); dashboard at {url}/", args.db.display());
        let dashboard = decsweep_dashboard::router(coordinator.clone());
        coordinator.serve_with(listener, dashboard, tls.as_ref(), shutdown_signal()).await?;
        Ok(())
    })
}

/// Ctrl-C or SIGTERM (what systemd, Kubernetes and docker send).
async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
    }
}
