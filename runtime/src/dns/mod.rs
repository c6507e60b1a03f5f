//! The node's cluster DNS server: `SVC.NS.svc.DOMAIN` and the other names of the Kubernetes DNS
//! specification, answered from the Service and EndpointSlice watches, over UDP and TCP on the
//! node bridge's address (the pods' nameserver); other names go to the host's nameservers.

mod records;
mod upstream;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use futures::StreamExt;
use hickory_server::net::runtime::Time;
use hickory_server::net::xfer::Protocol;
use hickory_server::proto::op::{Edns, Header, HeaderCounts, Message, MessageType, Metadata, OpCode, ResponseCode};
use hickory_server::proto::rr::Record;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo, Server};
use hickory_server::zone_handler::MessageResponseBuilder;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Api;
use kube::runtime::{WatchStreamExt, watcher};

use crate::network::NetworkHandle;

pub use records::{Lookup, Records, TTL};
pub use upstream::Upstreams;

/// Wait before starting a failed server again (its address may not be up yet, or port 53 taken).
const RESTART: Duration = Duration::from_secs(5);
/// How long a TCP client may stay idle between queries.
const TCP_IDLE: Duration = Duration::from_secs(10);
/// Answers one TCP connection may have queued for sending.
const TCP_RESPONSE_BUFFER: usize = 32;
/// UDP answer size when the client advertises none larger (RFC 9715's safe EDNS size).
const EDNS_PAYLOAD: u16 = 1232;

#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    #[error("bad cluster domain {domain:?}: {source}")]
    Domain { domain: String, source: hickory_server::proto::ProtoError },
    #[error("cannot listen on {addr}: {source}")]
    Listen { addr: SocketAddr, source: std::io::Error },
    #[error("DNS server stopped: {0}")]
    Serve(String),
}

/// The agent's DNS server: once the node network is up, serves `domain` on port 53 of the node
/// bridge's address (the pods' nameserver), started again after a failure. Stops when the
/// returned task is dropped.
pub fn spawn(client: kube::Client, network: NetworkHandle, domain: String) -> AbortOnDrop {
    AbortOnDrop(tokio::spawn(async move {
        let listen = SocketAddr::new(network.ready().await.gateway.into(), 53);
        loop {
            if let Err(e) = run(client.clone(), listen, domain.clone()).await {
                tracing::warn!(%listen, error = %e, "cluster DNS failed; starting it again in {RESTART:?}");
            }
            tokio::time::sleep(RESTART).await;
        }
    }))
}

/// A task that ends when this is dropped.
#[derive(Debug)]
pub struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Serves the cluster DNS on `listen` (UDP and TCP) for `domain` until dropped or failed.
pub async fn run(client: kube::Client, listen: SocketAddr, domain: String) -> Result<(), DnsError> {
    let (_, serving) = bind(client, listen, domain).await?;
    serving.await
}

/// Binds `listen` (port 0: one free port for both UDP and TCP) and returns the bound address and
/// the future that watches Services and EndpointSlices and answers queries. The upstream
/// nameservers are read once, from the host's /etc/resolv.conf.
pub async fn bind(
    client: kube::Client,
    listen: SocketAddr,
    domain: String,
) -> Result<(SocketAddr, impl Future<Output = Result<(), DnsError>> + Send + 'static), DnsError> {
    let records = Records::new(&domain).map_err(|source| DnsError::Domain { domain, source })?;
    let records = Arc::new(RwLock::new(records));
    let (udp, tcp) = listen_both(listen).await?;
    let addr = udp.local_addr().map_err(|source| DnsError::Listen { addr: listen, source })?;
    let resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let upstreams = Upstreams::from_resolv_conf(&resolv, addr);
    if upstreams.is_empty() {
        tracing::warn!("no nameserver in /etc/resolv.conf: names outside the cluster domain answer SERVFAIL");
    }
    let serving = serve(udp, tcp, records.clone(), upstreams);
    let services = watch(Api::<Service>::all(client.clone()), records.clone(), Records::service_event);
    let slices = watch(Api::<EndpointSlice>::all(client), records, Records::slice_event);
    tracing::info!(%addr, "cluster DNS listening");
    Ok((addr, async move {
        tokio::select! {
            result = serving => result,
            () = services => Err(DnsError::Serve("Service watch ended".into())),
            () = slices => Err(DnsError::Serve("EndpointSlice watch ended".into())),
        }
    }))
}

/// Binds UDP and TCP on the same address; for port 0, on the same free port.
async fn listen_both(listen: SocketAddr) -> Result<(tokio::net::UdpSocket, tokio::net::TcpListener), DnsError> {
    let err = |source| DnsError::Listen { addr: listen, source };
    let mut last = None;
    for _ in 0..10 {
        let udp = tokio::net::UdpSocket::bind(listen).await.map_err(err)?;
        let addr = udp.local_addr().map_err(err)?;
        match tokio::net::TcpListener::bind(addr).await {
            Ok(tcp) => return Ok((udp, tcp)),
            // Only a port we picked may be taken for TCP by someone else: pick another.
            Err(e) if listen.port() == 0 && e.kind() == std::io::ErrorKind::AddrInUse => last = Some(e),
            Err(e) => return Err(err(e)),
        }
    }
    Err(err(last.unwrap_or_else(|| std::io::Error::other("no free port"))))
}

/// Answers on the bound sockets from `records`, relaying other names to `upstreams`.
fn serve(
    udp: tokio::net::UdpSocket,
    tcp: tokio::net::TcpListener,
    records: Arc<RwLock<Records>>,
    upstreams: Upstreams,
) -> impl Future<Output = Result<(), DnsError>> + Send + 'static {
    let mut server = Server::new(Handler { records, upstreams });
    server.register_socket(udp);
    server.register_listener(tcp, TCP_IDLE, TCP_RESPONSE_BUFFER);
    // Dropping the future drops the server, whose tasks stop with it.
    async move { server.block_until_done().await.map_err(|e| DnsError::Serve(e.to_string())) }
}

/// Feeds one kind's watch events into the table, forever (the watcher retries with backoff).
async fn watch<K>(api: Api<K>, records: Arc<RwLock<Records>>, apply: fn(&mut Records, watcher::Event<K>))
where
    K: kube::Resource<DynamicType = ()> + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
{
    let mut events = watcher(api, watcher::Config::default()).default_backoff().boxed();
    while let Some(event) = events.next().await {
        match event {
            Ok(event) => apply(&mut records.write().unwrap_or_else(PoisonError::into_inner), event),
            Err(e) => tracing::warn!(kind = %K::kind(&()), error = %e, "DNS watch failed; retrying"),
        }
    }
}

struct Handler {
    records: Arc<RwLock<Records>>,
    upstreams: Upstreams,
}

/// What a query comes to, computed without holding the table across an await.
enum Reply {
    Records { code: ResponseCode, answers: Vec<Record>, additionals: Vec<Record>, soa: Option<Record> },
    Relayed(Message),
    Error(ResponseCode),
}

impl Handler {
    async fn reply(&self, request: &Request) -> Reply {
        if request.metadata.message_type != MessageType::Query || request.metadata.op_code != OpCode::Query {
            return Reply::Error(ResponseCode::NotImp);
        }
        let Ok(info) = request.request_info() else { return Reply::Error(ResponseCode::FormErr) };
        let query = info.query.original();
        let (lookup, soa) = {
            let records = self.records.read().unwrap_or_else(PoisonError::into_inner);
            (records.lookup(query.name(), query.query_type()), records.soa())
        };
        let none = Vec::new;
        match lookup {
            Lookup::Found { answers, additionals } => {
                Reply::Records { code: ResponseCode::NoError, answers, additionals, soa: None }
            }
            Lookup::NoData => {
                Reply::Records { code: ResponseCode::NoError, answers: none(), additionals: none(), soa: Some(soa) }
            }
            Lookup::NxDomain => {
                Reply::Records { code: ResponseCode::NXDomain, answers: none(), additionals: none(), soa: Some(soa) }
            }
            Lookup::NotReady => Reply::Error(ResponseCode::ServFail),
            Lookup::NotOurs => {
                match self.upstreams.ask(request.as_slice(), request.protocol() == Protocol::Tcp).await {
                    Some(message) => Reply::Relayed(message),
                    None => Reply::Error(ResponseCode::ServFail),
                }
            }
        }
    }
}

#[async_trait::async_trait]
impl RequestHandler for Handler {
    async fn handle_request<R: ResponseHandler, T: Time>(&self, request: &Request, mut response: R) -> ResponseInfo {
        let edns = request.edns.as_ref().map(|asked| {
            let mut edns = Edns::new();
            edns.set_max_payload(asked.max_payload().max(EDNS_PAYLOAD));
            edns
        });
        let mut builder = MessageResponseBuilder::from_message_request(request);
        if let Some(edns) = &edns {
            builder.edns(edns);
        }
        let mut metadata = Metadata::response_from_request(&request.metadata);
        metadata.recursion_available = true;
        let reply = self.reply(request).await;
        let sent = match &reply {
            Reply::Records { code, answers, additionals, soa } => {
                metadata.authoritative = true;
                metadata.response_code = *code;
                response.send_response(builder.build(metadata, answers, None, soa, additionals)).await
            }
            Reply::Relayed(message) => {
                metadata.response_code = message.metadata.response_code;
                metadata.truncation = message.metadata.truncation;
                let answer =
                    builder.build(metadata, &message.answers, &message.authorities, None, &message.additionals);
                response.send_response(answer).await
            }
            Reply::Error(code) => {
                metadata.response_code = *code;
                response.send_response(builder.build_no_records(metadata)).await
            }
        };
        sent.unwrap_or_else(|e| {
            tracing::debug!(error = %e, "cannot send DNS answer");
            metadata.response_code = ResponseCode::ServFail;
            ResponseInfo::from(Header { metadata, counts: HeaderCounts::default() })
        })
    }
}

#[cfg(test)]
mod tests;
