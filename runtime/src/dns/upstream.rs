//! Names outside the cluster domain: relayed as they came to the host's nameservers (from its
//! resolv.conf), over UDP or TCP as the client asked, first answer wins.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_server::proto::op::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

/// How long one upstream gets before the next is tried (glibc's default is 5 s per try; pods
/// retry on their own, so give up sooner and let them).
const TRY_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, Default)]
pub struct Upstreams {
    servers: Vec<SocketAddr>,
}

impl Upstreams {
    pub fn new(servers: Vec<SocketAddr>) -> Self {
        Self { servers }
    }

    /// The `nameserver` lines of a resolv.conf, port 53, leaving out `own` (our listening
    /// address: relaying to ourselves would loop).
    pub fn from_resolv_conf(text: &str, own: SocketAddr) -> Self {
        let servers = text
            .lines()
            .filter_map(|line| {
                let mut words = line.split_whitespace();
                (words.next()? == "nameserver").then_some(())?;
                // An IPv6 address may carry a zone (`fe80::1%eth0`): not reachable from here.
                words.next()?.parse::<IpAddr>().ok()
            })
            .map(|ip| SocketAddr::new(ip, 53))
            .filter(|addr| *addr != own)
            .collect();
        Self { servers }
    }

    pub fn is_empty(&self) -> bool {
        self.servers.is_empty()
    }

    /// The first answer of an upstream to the raw request `query` (its id unchanged), or None
    /// when none answered.
    pub async fn ask(&self, query: &[u8], tcp: bool) -> Option<Message> {
        let id = query.get(..2)?;
        for server in &self.servers {
            let answer = if tcp {
                tokio::time::timeout(TRY_TIMEOUT, ask_tcp(*server, query)).await
            } else {
                tokio::time::timeout(TRY_TIMEOUT, ask_udp(*server, query, id)).await
            };
            match answer {
                Ok(Ok(bytes)) => match Message::from_vec(&bytes) {
                    Ok(message) => return Some(message),
                    Err(e) => tracing::debug!(%server, error = %e, "upstream answer undecodable"),
                },
                Ok(Err(e)) => tracing::debug!(%server, error = %e, "upstream failed"),
                Err(_) => tracing::debug!(%server, "upstream timed out"),
            }
        }
        None
    }
}

async fn ask_udp(server: SocketAddr, query: &[u8], id: &[u8]) -> std::io::Result<Vec<u8>> {
    let local: SocketAddr = if server.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { ([0u16; 8], 0).into() };
    let socket = UdpSocket::bind(local).await?;
    socket.connect(server).await?;
    socket.send(query).await?;
    let mut buf = vec![0u8; 65535];
    loop {
        let n = socket.recv(&mut buf).await?;
        // A connected socket only hears from `server`; a stray late answer has another id.
        if buf.get(..2) == Some(id) {
            buf.truncate(n);
            return Ok(buf);
        }
    }
}

async fn ask_tcp(server: SocketAddr, query: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut stream = TcpStream::connect(server).await?;
    let len = u16::try_from(query.len()).map_err(|_| std::io::Error::other("query too long"))?;
    let mut framed = Vec::with_capacity(query.len() + 2);
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(query);
    stream.write_all(&framed).await?;
    let len = stream.read_u16().await?;
    let mut buf = vec![0u8; usize::from(len)];
    stream.read_exact(&mut buf).await?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nameservers_from_resolv_conf() {
        let text = "# generated\nsearch example.com\nnameserver 192.0.2.1\nnameserver  2001:db8::1\n\
                    nameserver fe80::1%eth0\nnameserver 10.0.0.1\noptions ndots:1\n";
        let upstreams = Upstreams::from_resolv_conf(text, "10.0.0.1:53".parse().unwrap());
        let servers: Vec<String> = upstreams.servers.iter().map(|s| s.to_string()).collect();
        assert_eq!(servers, ["192.0.2.1:53", "[2001:db8::1]:53"]);
        assert!(Upstreams::from_resolv_conf("search x\n", "10.0.0.1:53".parse().unwrap()).is_empty());
    }
}
