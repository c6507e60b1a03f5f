//! The `wharf` binary: the CLI that wires the control plane, the node agent and the dashboard.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

mod bench;

#[derive(Parser)]
#[command(name = "wharf", version, about = "A Kubernetes-compatible orchestrator for Wasm and Linux containers")]
struct Cli {
    /// Log format: text or json.
    #[arg(long, global = true, default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the control plane: the Kubernetes API server on SQLite.
    Server {
        /// Where the database, certificates, tokens and kubeconfig live.
        #[arg(long, env = "WHARF_DATA_DIR")]
        data_dir: Option<PathBuf>,
        /// Address the API server listens on (HTTPS).
        #[arg(long, default_value = "127.0.0.1:6443")]
        listen: SocketAddr,
        /// Revisions kept for watches to resume from.
        #[arg(long, default_value_t = 10_000)]
        watch_window: usize,
    },
    /// Measure Wharf on this machine against a peer measured in the same run.
    Bench {
        #[command(subcommand)]
        target: bench::Target,
    },
}

/// `$XDG_DATA_HOME/wharf`, else `~/.local/share/wharf`.
fn default_data_dir() -> PathBuf {
    if let Some(xdg) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(xdg).join("wharf");
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("."));
    home.join(".local/share/wharf")
}

fn init_logging(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler installs");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutting down");
}

fn main() {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if matches!(e.kind(), clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion) => {
            e.exit()
        }
        Err(e) => {
            // One line, as operators expect from a bad flag; --help has the rest.
            let first = e.to_string().lines().next().unwrap_or("invalid arguments").to_string();
            eprintln!("{first} (see 'wharf --help')");
            std::process::exit(2);
        }
    };
    init_logging(&cli.log_format);
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime starts");
    if let Err(e) = runtime.block_on(run(cli.command)) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Server { data_dir, listen, watch_window } => {
            let data_dir = data_dir.unwrap_or_else(default_data_dir);
            let config = wharf_control::server::ServerConfig {
                data_dir: data_dir.clone(),
                listen,
                store: wharf_control::store::StoreOptions { window: watch_window, ..Default::default() },
            };
            wharf_control::server::run(
                config,
                |started| {
                    println!("Wharf API server listening on {}", started.url);
                    println!("Data dir: {}", data_dir.display());
                    println!("Use it with: export KUBECONFIG={}", started.kubeconfig.display());
                },
                shutdown_signal(),
            )
            .await
            .with_context(|| "the server stopped")?;
            Ok(())
        }
        Command::Bench { target } => bench::run(target).await,
    }
}
