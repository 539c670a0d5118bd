//! `decsweep serve`: the coordinator alone, for workers on other machines.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use decsweep_coordinator::{Coordinator, CoordinatorOptions};
use decsweep_server::{check_bind, AllowedHosts, ServeOptions, Server, ServerTls};

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The study database (created if missing; resumed if it exists). One coordinator per
    /// database: `serve` and `run` lock `<FILE>.lock` beside it, and a second one is refused
    /// (exit 2) with the holder's pid, host and address. The lock ends with its process, even
    /// a killed one. Keep the database on a local disk: a network file system may not share
    /// the lock between hosts, and SQLite's WAL needs memory shared by its users.
    #[arg(long, value_name = "FILE", default_value = "decsweep.db")]
    db: PathBuf,
    /// Address to listen on. Anything but loopback requires --token or --token-file.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8320")]
    bind: SocketAddr,
    /// The bearer token workers and clients must send (--token or --token-file, at least 16
    /// bytes); the dashboard asks for it once at login. Without one, on loopback, a random token
    /// is generated and kept in a file only you can read ($DECSWEEP_RUNTIME_DIR, else
    /// $XDG_RUNTIME_DIR/decsweep, else ~/.local/state/decsweep, named after the address), which
    /// decsweep's clients on this machine read by themselves; a restart reuses it.
    #[command(flatten)]
    token: decsweep_connect::TokenArgs,
    /// A second token that may only look: `GET` on /v1 and a view-only dashboard login.
    /// Needs --token or --token-file. Visible to anyone who can run `ps` on this machine;
    /// prefer --read-token-file.
    #[arg(long, env = "DECSWEEP_READ_TOKEN", hide_env_values = true)]
    read_token: Option<String>,
    /// File holding the read token (a trailing newline is ignored). Takes precedence over
    /// --read-token.
    #[arg(long, env = "DECSWEEP_READ_TOKEN_FILE", value_name = "FILE")]
    read_token_file: Option<PathBuf>,
    /// A `Host` name to answer to besides IP addresses and `localhost` (repeatable), e.g. the
    /// DNS name workers and browsers use, or a Kubernetes or compose service name. Requests
    /// naming any other host are refused (421), so a web page cannot reach this coordinator
    /// through DNS rebinding.
    #[arg(long = "allowed-host", value_name = "NAME", env = "DECSWEEP_ALLOWED_HOSTS", value_delimiter = ',')]
    allowed_hosts: Vec<String>,
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
    if let Some(t) = &token {
        decsweep_connect::check_token_length(t, &args.token.source()).map_err(|e| bad_input(&e))?;
    }
    check_bind(args.bind, token.as_deref()).map_err(|e| bad_input(&e))?;
    let read_token = read_token(&args).map_err(|e| bad_input(&e))?;
    if read_token.is_some() && token.is_none() {
        return Err(bad_input(
            &"--read-token needs --token or --token-file (a read token beside a generated token would be the \
              only one you know)",
        )
        .into());
    }
    if let Some(root) = args.data_root.as_deref().filter(|r| !r.is_dir()) {
        return Err(bad_input(&format!("--data-root {} is not a folder", root.display())).into());
    }
    // Checked before the database is opened, so a wrong path costs nothing.
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(ServerTls::from_pem_files(cert, key).map_err(|e| bad_input(&e))?),
        _ => None,
    };
    if tls.is_none() && !args.bind.ip().to_canonical().is_loopback() {
        eprintln!(
            "WARNING: serving plain HTTP on {}: the token crosses the network in clear text, readable by anyone \
             on the path. Use --tls-cert/--tls-key (or a TLS proxy) beyond a trusted network.",
            args.bind
        );
    }
    let options = CoordinatorOptions {
        lease_ttl: Duration::from_secs(args.lease_ttl.max(1)),
        max_checkpoint_bytes: args.max_checkpoint_mb.saturating_mul(1 << 20),
        data_root: args.data_root.clone(),
        lock_command: Some("decsweep serve".into()),
        ..Default::default()
    };
    // Before the address is bound: a second `serve` of this database is told which coordinator
    // holds it (exit 2), not that the port is taken.
    let coordinator = Coordinator::open(&args.db, options)?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(args.bind).await?;
        let local = listener.local_addr()?;
        // No token given (loopback only, see check_bind): one of our own, in a file only this
        // user can read, named after the address it guards.
        let generated = match &token {
            Some(_) => None,
            None => Some(decsweep_connect::runtime::serve_token(local).map_err(|e| bad_input(&e))?),
        };
        let serve = ServeOptions {
            token: token.or_else(|| generated.as_ref().map(|g| g.token.clone())),
            read_token,
            allowed_hosts: AllowedHosts::new(&args.allowed_hosts),
            ..Default::default()
        };
        let scheme = if tls.is_some() { "https" } else { "http" };
        let url = format!("{scheme}://{local}");
        coordinator.announce_address(&url)?;
        let server = Server::new(coordinator, serve);
        let mut started =
            format!("coordinator listening on {url} (database {}); dashboard at {url}/\n", args.db.display());
        if let Some(g) = &generated {
            let how = if g.reused { "kept from" } else { "written to" };
            started.push_str(&format!(
                "token: {how} {} (decsweep's clients on this machine read it); log the browser in with \
                 {url}/?token={}\n",
                g.path.display(),
                g.token
            ));
        }
        // One write, so a reader that takes the first line and goes away never breaks a second.
        eprint!("{started}");
        let dashboard = decsweep_dashboard::router(server.clone());
        server.serve_with(listener, dashboard, tls.as_ref(), shutdown_signal()).await?;
        Ok(())
    })
}

/// The read token: from --read-token-file, else --read-token; at least 16 bytes.
fn read_token(args: &ServeArgs) -> Result<Option<String>, decsweep_connect::ConnectError> {
    let (token, what) = match (&args.read_token_file, &args.read_token) {
        (Some(path), _) => {
            (Some(decsweep_connect::read_token_file(path)?), format!("the read token file {}", path.display()))
        }
        (None, Some(t)) if !t.is_empty() => (Some(t.clone()), "--read-token (or DECSWEEP_READ_TOKEN)".to_string()),
        (None, _) => (None, String::new()),
    };
    if let Some(t) = &token {
        decsweep_connect::check_token_length(t, &what)?;
    }
    Ok(token)
}

/// Ctrl-C or SIGTERM (what systemd, Kubernetes and docker send).
async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
    }
}
