//! `decsweep serve`: the coordinator alone, for workers on other machines.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use decsweep_coordinator::{check_bind, Coordinator, CoordinatorOptions};

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The study database (created if missing; resumed if it exists).
    #[arg(long, value_name = "FILE", default_value = "decsweep.db")]
    db: PathBuf,
    /// Address to listen on. Anything but loopback requires --token.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8320")]
    bind: SocketAddr,
    /// Bearer token workers and clients must send; the dashboard asks for it once at login.
    #[arg(long, env = "DECSWEEP_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// A second token that may only look: `GET` on /v1 and a view-only dashboard login.
    /// Needs --token.
    #[arg(long, env = "DECSWEEP_READ_TOKEN", hide_env_values = true)]
    read_token: Option<String>,
    /// Seconds a lease lives without a heartbeat before its trial is handed out again.
    #[arg(long, default_value_t = 60)]
    lease_ttl: u64,
}

pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    check_bind(args.bind, args.token.as_deref()).map_err(|e| crate::exit::BadInput(e.to_string()))?;
    if args.read_token.as_deref().is_some_and(|t| !t.is_empty()) && args.token.as_deref().is_none_or(str::is_empty) {
        return Err(
            crate::exit::BadInput("--read-token needs --token (without a token everything is open)".into()).into()
        );
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        let options = CoordinatorOptions {
            lease_ttl: Duration::from_secs(args.lease_ttl.max(1)),
            token: args.token.clone(),
            read_token: args.read_token.clone(),
            ..Default::default()
        };
        let coordinator = Coordinator::open(&args.db, options)?;
        let listener = tokio::net::TcpListener::bind(args.bind).await?;
        let url = format!("http://{}", listener.local_addr()?);
        eprintln!("coordinator listening on {url} (database {}); dashboard at {url}/", args.db.display());
        let dashboard = decsweep_dashboard::router(coordinator.clone());
        coordinator.serve_with(listener, dashboard, shutdown_signal()).await?;
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
