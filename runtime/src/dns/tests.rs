//! The server on 127.0.0.1:0, asked over UDP and TCP with DNS messages built by hickory-proto.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use hickory_server::proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_server::proto::rr::{Name, RData, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

use super::records::tests::{service, slice, table, table_in};
use super::*;

/// No answer within this is a failure (the server answers from memory, in microseconds).
const PATIENCE: Duration = Duration::from_secs(5);

struct Running {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<Result<(), DnsError>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn start(records: Records, upstreams: Upstreams) -> Running {
    let (udp, tcp) = listen_both("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let addr = udp.local_addr().unwrap();
    let task = tokio::spawn(serve(udp, tcp, Arc::new(RwLock::new(records)), upstreams));
    Running { addr, task }
}

fn sample() -> Records {
    table(
        [service("default", "web", "10.96.0.10", &[("http", 80)]), service("default", "db", "None", &[("pg", 5432)])],
        [slice(
            "default",
            "db-a",
            "db",
            &[("10.244.1.5", Some("db-0"), true), ("10.244.1.6", None, true)],
            &[("pg", 15432)],
        )],
    )
}

fn query(id: u16, name: &str, qtype: RecordType) -> Vec<u8> {
    let mut message = Message::new(id, MessageType::Query, OpCode::Query);
    message.metadata.recursion_desired = true;
    message.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
    message.to_vec().unwrap()
}

async fn ask_udp(socket: &UdpSocket, id: u16, name: &str, qtype: RecordType) -> Message {
    socket.send(&query(id, name, qtype)).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(PATIENCE, socket.recv(&mut buf)).await.expect("no UDP answer").unwrap();
    let answer = Message::from_vec(&buf[..n]).unwrap();
    assert_eq!(answer.metadata.id, id);
    answer
}

async fn ask_tcp(stream: &mut TcpStream, id: u16, name: &str, qtype: RecordType) -> Message {
    let q = query(id, name, qtype);
    stream.write_all(&u16::try_from(q.len()).unwrap().to_be_bytes()).await.unwrap();
    stream.write_all(&q).await.unwrap();
    let read = async {
        let len = stream.read_u16().await.unwrap();
        let mut buf = vec![0u8; usize::from(len)];
        stream.read_exact(&mut buf).await.unwrap();
        buf
    };
    let buf = tokio::time::timeout(PATIENCE, read).await.expect("no TCP answer");
    let answer = Message::from_vec(&buf).unwrap();
    assert_eq!(answer.metadata.id, id);
    answer
}

async fn udp_client(server: SocketAddr) -> UdpSocket {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    socket.connect(server).await.unwrap();
    socket
}

fn a_records(message: &Message) -> Vec<Ipv4Addr> {
    message
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(a.0),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn answers_over_udp_and_tcp() {
    let server = start(sample(), Upstreams::default()).await;
    let udp = udp_client(server.addr).await;

    let answer = ask_udp(&udp, 1, "web.default.svc.cluster.local.", RecordType::A).await;
    assert_eq!(answer.metadata.response_code, ResponseCode::NoError);
    assert!(answer.metadata.authoritative);
    assert_eq!(a_records(&answer), [Ipv4Addr::new(10, 96, 0, 10)]);
    assert_eq!(answer.answers[0].ttl, TTL);

    let answer = ask_udp(&udp, 2, "DB.default.svc.cluster.local.", RecordType::A).await;
    assert_eq!(a_records(&answer), [Ipv4Addr::new(10, 244, 1, 5), Ipv4Addr::new(10, 244, 1, 6)]);

    let answer = ask_udp(&udp, 3, "_pg._tcp.db.default.svc.cluster.local.", RecordType::SRV).await;
    let ports: Vec<u16> = answer
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::SRV(srv) => Some(srv.port),
            _ => None,
        })
        .collect();
    assert_eq!(ports, [15432, 15432]);
    assert_eq!(answer.additionals.len(), 2, "the targets' addresses come along");

    let answer = ask_udp(&udp, 4, "nope.default.svc.cluster.local.", RecordType::A).await;
    assert_eq!(answer.metadata.response_code, ResponseCode::NXDomain);
    assert!(answer.answers.is_empty());
    assert!(matches!(answer.authorities.first().map(|r| &r.data), Some(RData::SOA(soa)) if soa.minimum == TTL));

    let answer = ask_udp(&udp, 5, "web.default.svc.cluster.local.", RecordType::AAAA).await;
    assert_eq!(answer.metadata.response_code, ResponseCode::NoError);
    assert!(answer.answers.is_empty());
    assert_eq!(answer.authorities.len(), 1);

    // Two queries on one TCP connection.
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    let answer = ask_tcp(&mut tcp, 6, "10-244-3-9.default.pod.cluster.local.", RecordType::A).await;
    assert_eq!(a_records(&answer), [Ipv4Addr::new(10, 244, 3, 9)]);
    let answer = ask_tcp(&mut tcp, 7, "db-0.db.default.svc.cluster.local.", RecordType::A).await;
    assert_eq!(a_records(&answer), [Ipv4Addr::new(10, 244, 1, 5)]);
}

#[tokio::test]
async fn servfail_before_the_watches_listed_and_without_upstreams() {
    let server = start(Records::new("cluster.local").unwrap(), Upstreams::default()).await;
    let udp = udp_client(server.addr).await;
    let answer = ask_udp(&udp, 1, "web.default.svc.cluster.local.", RecordType::A).await;
    assert_eq!(answer.metadata.response_code, ResponseCode::ServFail);
    let answer = ask_udp(&udp, 2, "example.com.", RecordType::A).await;
    assert_eq!(answer.metadata.response_code, ResponseCode::ServFail);
}

/// Names outside the domain are relayed: the upstream here is a second server, authoritative
/// for `example.test`, behind a dead one that must be skipped.
#[tokio::test]
async fn other_names_go_upstream() {
    let other = table_in("example.test", [service("shop", "cart", "192.0.2.7", &[])], []);
    let upstream = start(other, Upstreams::default()).await;
    // A closed port: the UDP relay gets "connection refused" and moves on.
    let dead = UdpSocket::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();
    let server = start(sample(), Upstreams::new(vec![dead, upstream.addr])).await;

    let udp = udp_client(server.addr).await;
    let answer = ask_udp(&udp, 9, "cart.shop.svc.example.test.", RecordType::A).await;
    assert_eq!(answer.metadata.response_code, ResponseCode::NoError);
    assert_eq!(a_records(&answer), [Ipv4Addr::new(192, 0, 2, 7)]);
    assert!(!answer.metadata.authoritative, "a relayed answer is not ours");
    let answer = ask_udp(&udp, 10, "gone.shop.svc.example.test.", RecordType::A).await;
    assert_eq!(answer.metadata.response_code, ResponseCode::NXDomain);

    let server = start(sample(), Upstreams::new(vec![upstream.addr])).await;
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    let answer = ask_tcp(&mut tcp, 11, "cart.shop.svc.example.test.", RecordType::A).await;
    assert_eq!(a_records(&answer), [Ipv4Addr::new(192, 0, 2, 7)]);
}

/// 10,000 A queries over UDP on loopback, one at a time; prints the latency distribution.
#[tokio::test]
async fn udp_latency_of_ten_thousand_queries() {
    let server = start(sample(), Upstreams::default()).await;
    let udp = udp_client(server.addr).await;
    let mut took = Vec::with_capacity(10_000);
    let started = Instant::now();
    for i in 0..10_000u16 {
        let t = Instant::now();
        let answer = ask_udp(&udp, i, "web.default.svc.cluster.local.", RecordType::A).await;
        took.push(t.elapsed());
        assert_eq!(a_records(&answer), [Ipv4Addr::new(10, 96, 0, 10)]);
    }
    let total = started.elapsed();
    took.sort();
    let at = |q: f64| took[((took.len() as f64 - 1.0) * q) as usize];
    println!(
        "dns udp latency over 10000 queries: total {:?} ({:.0} q/s), p50 {:?}, p90 {:?}, p99 {:?}, max {:?}",
        total,
        10_000.0 / total.as_secs_f64(),
        at(0.5),
        at(0.9),
        at(0.99),
        took[took.len() - 1]
    );
}
