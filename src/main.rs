//! The `wharf` binary: the CLI that wires the control plane, the node agent and the dashboard.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};

mod agent;
mod bench;
mod functions;
mod image;
mod token;

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
    /// Run the control plane: the Kubernetes API server on SQLite, or on Postgres shared by
    /// several servers.
    Server {
        /// Where the database, certificates, tokens and kubeconfig live.
        #[arg(long, env = "WHARF_DATA_DIR")]
        data_dir: Option<PathBuf>,
        /// Where objects live: sqlite://PATH (default: sqlite://DATA_DIR/wharf.db) or
        /// postgres://USER[:PASSWORD]@HOST[:PORT]/DB, which several servers can share.
        #[arg(long, env = "WHARF_DATASTORE", value_name = "URL", value_parser = DatastoreParser, hide_env_values = true,
              conflicts_with = "join")]
        datastore: Option<wharf_control::store::Datastore>,
        /// Join the cluster of the server at URL (e.g. https://10.0.0.1:6443), sharing its
        /// datastore; needs --token.
        #[arg(long, value_name = "URL")]
        join: Option<String>,
        /// The server token of the cluster to join (the other server's DATA_DIR/server.token).
        /// Prefer WHARF_SERVER_TOKEN: a flag's value is visible to every user in the process list.
        #[arg(long, value_name = "TOKEN", env = "WHARF_SERVER_TOKEN", hide_env_values = true)]
        token: Option<String>,
        /// Address the API server listens on (HTTPS).
        #[arg(long, default_value = "127.0.0.1:6443")]
        listen: SocketAddr,
        /// Revisions kept for watches to resume from.
        #[arg(long, default_value_t = 10_000)]
        watch_window: usize,
        /// Run only the control plane, without the local node agent.
        #[arg(long)]
        no_agent: bool,
        /// Name of the local node (default: the host name).
        #[arg(long)]
        node_name: Option<String>,
        /// Address of the local agent's HTTPS endpoint (port 0 picks a free one).
        #[arg(long, default_value = "127.0.0.1:0")]
        agent_listen: SocketAddr,
        /// How long a node may go without renewing its Lease before it is NotReady (e.g. 40s).
        #[arg(long, default_value = "40s", value_parser = parse_duration)]
        node_monitor_grace_period: Duration,
        /// How long an Event is kept after it last happened (e.g. 1h).
        #[arg(long, default_value = "1h", value_parser = parse_duration)]
        event_ttl: Duration,
        /// tolerationSeconds of the not-ready:NoExecute toleration added to every pod without one.
        #[arg(long, default_value_t = 300)]
        default_not_ready_toleration_seconds: i64,
        /// tolerationSeconds of the unreachable:NoExecute toleration added to every pod without one.
        #[arg(long, default_value_t = 300)]
        default_unreachable_toleration_seconds: i64,
        /// The range pod IPs come from; each node gets a slice of it as its podCIDR.
        #[arg(long, default_value = "10.244.0.0/16")]
        cluster_cidr: ipnet::Ipv4Net,
        /// Prefix length of each node's podCIDR within --cluster-cidr.
        #[arg(long, default_value_t = 24, value_parser = clap::value_parser!(u8).range(8..=30))]
        node_cidr_mask_size: u8,
        /// The range Service ClusterIPs come from (must not overlap --cluster-cidr).
        #[arg(long, default_value = "10.96.0.0/12")]
        service_cidr: ipnet::Ipv4Net,
        /// The ports NodePort Services may use, as FIRST-LAST.
        #[arg(long, default_value = "30000-32767", value_parser = parse_port_range)]
        service_node_port_range: std::ops::RangeInclusive<u16>,
        #[command(flatten)]
        tuning: AgentTuning,
    },
    /// Run a node agent that joins a cluster.
    Agent {
        /// The API server, e.g. https://10.0.0.1:6443; several servers of one control plane
        /// comma-separated or repeated (https://a:6443,https://b:6443): the agent fails over
        /// between them.
        #[arg(long = "server", value_name = "URL", required = true, value_delimiter = ',')]
        servers: Vec<String>,
        /// File holding the node join token (the server writes DIR/node-token).
        #[arg(long)]
        token_file: PathBuf,
        /// Node name (default: the host name).
        #[arg(long)]
        name: Option<String>,
        /// Where pod volumes, logs, images and compiled Wasm live.
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// The agent's HTTPS endpoint, which the API server calls for logs.
        #[arg(long, default_value = "127.0.0.1:10250")]
        listen: SocketAddr,
        /// Address reported as the node's InternalIP (default: the listen address, or 127.0.0.1).
        #[arg(long)]
        node_ip: Option<String>,
        #[command(flatten)]
        tuning: AgentTuning,
    },
    /// Measure Wharf on this machine against a peer measured in the same run.
    Bench {
        #[command(subcommand)]
        target: bench::Target,
    },
    /// Load images into the cluster's embedded registry and list them.
    Image(image::ImageArgs),
    /// Deploy, list, invoke, read the logs of and remove Functions.
    Fn(functions::FnArgs),
    /// Create, list and revoke bearer tokens for users.
    Token(token::TokenArgs),
}

/// Knobs of the node agent.
#[derive(clap::Args, Clone)]
struct AgentTuning {
    /// First restart back-off of a failing container, in milliseconds (doubles up to 30×).
    #[arg(long, default_value_t = 10_000)]
    backoff_base_ms: u64,
    /// Most pods the node runs.
    #[arg(long, default_value_t = 2500)]
    max_pods: u32,
    /// Most processes one Linux container may hold, so a fork bomb stays inside it (0: no limit).
    #[arg(long, default_value_t = 1024)]
    pids_limit: i64,
    /// A registry (`host:port`) to pull from over plain HTTP instead of HTTPS; repeatable.
    #[arg(long = "insecure-registry", value_name = "HOST:PORT")]
    insecure_registries: Vec<String>,
    /// leaseDurationSeconds of the node's Lease, renewed every quarter of it (at least every
    /// second); the server's --node-monitor-grace-period should exceed it.
    #[arg(long, default_value_t = wharf_runtime::node::DEFAULT_LEASE_DURATION_SECONDS,
          value_parser = clap::value_parser!(u32).range(1..))]
    node_lease_duration_seconds: u32,
    /// Where the node's HTTP gateway (Functions, routed Services) listens.
    #[arg(long, default_value = "0.0.0.0:8080")]
    gateway_listen: SocketAddr,
    /// The cluster's DNS domain: Services are NAME.NAMESPACE.svc.DOMAIN.
    #[arg(long, default_value = "cluster.local")]
    cluster_domain: String,
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
        // libcgroups warns of every v1 controller the kernel lacks, at every container start.
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,libcgroups=error"));
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

/// Resolves on SIGINT or SIGTERM. The handlers are installed when this is called, not when the
/// future is first polled, so a signal that comes while the server is still starting (it answers
/// `/readyz` before it waits for signals) stops it cleanly instead of killing it.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt()).expect("SIGINT handler installs");
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler installs");
    async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = term.recv() => {}
        }
        tracing::info!("shutting down");
    }
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
    // Each running container keeps its log file open, and watchers hold sockets: the usual soft
    // limit of 1,024 open files would stop a node short of its pod capacity.
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => tracing::debug!(limit, "open files limit"),
        Err(e) => tracing::warn!(error = %e, "cannot raise the open files limit"),
    }
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime starts");
    if let Err(e) = runtime.block_on(run(cli.command)) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Server {
            data_dir,
            datastore,
            join,
            token,
            listen,
            watch_window,
            no_agent,
            node_name,
            agent_listen,
            node_monitor_grace_period,
            event_ttl,
            default_not_ready_toleration_seconds,
            default_unreachable_toleration_seconds,
            cluster_cidr,
            node_cidr_mask_size,
            service_cidr,
            service_node_port_range,
            tuning,
        } => {
            if cluster_cidr.contains(&service_cidr.network()) || service_cidr.contains(&cluster_cidr.network()) {
                anyhow::bail!("--service-cidr {service_cidr} overlaps --cluster-cidr {cluster_cidr}");
            }
            if node_cidr_mask_size < cluster_cidr.prefix_len() {
                anyhow::bail!(
                    "--node-cidr-mask-size {node_cidr_mask_size} is larger than --cluster-cidr {cluster_cidr} itself"
                );
            }
            let data_dir = data_dir.unwrap_or_else(default_data_dir);
            let (datastore, joined_ca) = match (join, token) {
                (Some(url), Some(token)) => {
                    let joined = wharf_control::api::server_join::join(&url, &token).await?;
                    (joined.datastore, Some(joined.ca_pem))
                }
                (Some(_), None) => {
                    anyhow::bail!(
                        "--join needs WHARF_SERVER_TOKEN (or --token): the server token in the other server's DATA_DIR/server.token"
                    )
                }
                (None, Some(_)) => {
                    anyhow::bail!("--token (WHARF_SERVER_TOKEN) is the server token for --join URL: give --join too")
                }
                (None, None) => {
                    (datastore.unwrap_or_else(|| wharf_control::store::Datastore::default_for(&data_dir)), None)
                }
            };
            println!("Datastore: {datastore}");
            let config = wharf_control::server::ServerConfig {
                data_dir: data_dir.clone(),
                listen,
                datastore,
                joined_ca,
                store: wharf_control::store::StoreOptions { window: watch_window, ..Default::default() },
                controllers: wharf_control::controllers::ControllerOptions {
                    node_monitor_grace_period,
                    event_ttl,
                    cluster_cidr,
                    node_cidr_mask_size,
                },
                admission: wharf_control::server::AdmissionOptions {
                    default_not_ready_toleration_seconds,
                    default_unreachable_toleration_seconds,
                    service_cidr,
                    service_node_port_range,
                },
                dashboard: Some(wharf_web_ui::router()),
            };
            let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
            let agent_dir = data_dir.join("agent");
            let server = wharf_control::server::run(
                config,
                move |started| {
                    println!("Wharf API server listening on {}", started.url);
                    println!("Data dir: {}", data_dir.display());
                    println!("Use it with: export KUBECONFIG={}", started.kubeconfig.display());
                    if let Some(dashboard) = &started.dashboard_url {
                        println!(
                            "Dashboard: {dashboard} (sign in with the token in {})",
                            started.admin_token_file.display()
                        );
                    }
                    if matches!(started.datastore, wharf_control::store::Datastore::Postgres(_)) {
                        println!(
                            "Join another server: WHARF_SERVER_TOKEN=$(cat {}) wharf server --join {}",
                            started.server_token_file.display(),
                            started.url
                        );
                    }
                    let _ = ready_tx.send((started.url.clone(), started.node_token.clone()));
                },
                shutdown_signal(),
            );
            let agent = async move {
                if no_agent {
                    return std::future::pending::<anyhow::Result<()>>().await;
                }
                let Ok((url, token)) = ready_rx.await else { return std::future::pending().await };
                let options = agent::JoinOptions {
                    servers: vec![url],
                    token,
                    name: node_name.unwrap_or_else(agent::hostname),
                    data_dir: agent_dir,
                    listen: agent_listen,
                    node_ip: None,
                    backoff_base: Duration::from_millis(tuning.backoff_base_ms),
                    max_pods: tuning.max_pods,
                    pids_limit: tuning.pids_limit,
                    insecure_registries: tuning.insecure_registries,
                    node_lease_duration_seconds: tuning.node_lease_duration_seconds,
                    gateway_listen: tuning.gateway_listen,
                    cluster_domain: tuning.cluster_domain,
                };
                agent::run(options).await.context("the local node agent stopped")
            };
            tokio::select! {
                result = server => result.with_context(|| "the server stopped")?,
                result = agent => result?,
            }
            Ok(())
        }
        Command::Agent { servers, token_file, name, data_dir, listen, node_ip, tuning } => {
            let token = std::fs::read_to_string(&token_file)
                .with_context(|| format!("cannot read the node token {}", token_file.display()))?;
            let servers: Vec<String> = servers.iter().map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect();
            if servers.is_empty() {
                anyhow::bail!("--server: give at least one API server URL");
            }
            let options = agent::JoinOptions {
                servers,
                token: token.trim().to_string(),
                name: name.unwrap_or_else(agent::hostname),
                data_dir: data_dir.unwrap_or_else(|| default_data_dir().join("agent")),
                listen,
                node_ip,
                backoff_base: Duration::from_millis(tuning.backoff_base_ms),
                max_pods: tuning.max_pods,
                pids_limit: tuning.pids_limit,
                insecure_registries: tuning.insecure_registries,
                node_lease_duration_seconds: tuning.node_lease_duration_seconds,
                gateway_listen: tuning.gateway_listen,
                cluster_domain: tuning.cluster_domain,
            };
            tokio::select! {
                result = agent::run(options) => result,
                _ = shutdown_signal() => Ok(()),
            }
        }
        Command::Bench { target } => bench::run(target).await,
        Command::Image(args) => image::run(args).await,
        Command::Fn(args) => functions::run(args).await,
        Command::Token(args) => token::run(args).await,
    }
}

/// A duration flag as Kubernetes components take them (Go syntax): `40s`, `500ms`, `1m30s`.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let seconds = wharf_control::registry::validation::parse_duration(text)?;
    Duration::try_from_secs_f64(seconds).map_err(|_| format!("{text:?} must be a duration of zero or more, like 40s"))
}

/// The `--datastore` flag: `sqlite://PATH` or `postgres://…`. Its errors show the URL with the
/// password hidden (clap's own would repeat the value as given).
#[derive(Clone)]
struct DatastoreParser;

impl clap::builder::TypedValueParser for DatastoreParser {
    type Value = wharf_control::store::Datastore;

    fn parse_ref(
        &self,
        _: &clap::Command,
        _: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<Self::Value, clap::Error> {
        let invalid = |message: String| clap::Error::raw(clap::error::ErrorKind::ValueValidation, message);
        let text = value.to_str().ok_or_else(|| invalid("invalid value for --datastore: not UTF-8\n".into()))?;
        wharf_control::store::Datastore::parse(text)
            .map_err(|e| invalid(format!("invalid value for --datastore: {e}\n")))
    }
}

/// A port range flag: `FIRST-LAST`.
fn parse_port_range(text: &str) -> Result<std::ops::RangeInclusive<u16>, String> {
    let bad = || format!("{text:?} must be a port range FIRST-LAST, like 30000-32767");
    let (first, last) = text.split_once('-').ok_or_else(bad)?;
    let (first, last): (u16, u16) = (first.trim().parse().map_err(|_| bad())?, last.trim().parse().map_err(|_| bad())?);
    if first == 0 || first > last {
        return Err(bad());
    }
    Ok(first..=last)
}
