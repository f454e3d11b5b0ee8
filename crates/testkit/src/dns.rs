//! A small authoritative DNS server on 127.0.0.1:0 (UDP) whose answers a test
//! changes while ballast resolves against it (`[server] dns_servers`).
//!
//! Test support only. Built on hickory-proto's message types: each query is
//! answered from a table of names (A, AAAA and SRV records, one TTL for all),
//! or, when the test says so, with SERVFAIL, NXDOMAIN or no answer at all (a
//! server that stopped). A name not in the table is NXDOMAIN; a name without
//! records of the asked type is an empty NOERROR answer. Every query is counted
//! so that a test can wait for the next lookup instead of sleeping.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, SRV};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use tokio::net::UdpSocket;
use tokio::task::JoinHandle;

/// How the server answers every query, whatever the table holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// From the table.
    Answer,
    ServFail,
    NxDomain,
    /// No answer at all: the client times out.
    Silent,
}

/// An SRV record: priority, weight, port, target name.
pub type Srv = (u16, u16, u16, &'static str);

#[derive(Default)]
struct Zone {
    addresses: HashMap<String, Vec<IpAddr>>,
    srv: HashMap<String, Vec<Srv>>,
    ttl: u32,
    mode: Option<Mode>,
}

pub struct DnsServer {
    pub addr: SocketAddr,
    zone: Arc<Mutex<Zone>>,
    queries: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl DnsServer {
    /// A server with an empty table and a TTL of 1 s.
    pub async fn start() -> DnsServer {
        let socket = UdpSocket::bind("127.0.0.1:0")
            .await
            .expect("bind a DNS server on 127.0.0.1:0");
        let addr = socket.local_addr().expect("local address");
        let zone = Arc::new(Mutex::new(Zone {
            ttl: 1,
            ..Zone::default()
        }));
        let queries = Arc::new(AtomicU64::new(0));
        let task = tokio::spawn(serve(socket, zone.clone(), queries.clone()));
        DnsServer {
            addr,
            zone,
            queries,
            task,
        }
    }

    fn zone(&self) -> std::sync::MutexGuard<'_, Zone> {
        self.zone.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The A and AAAA records of `name` (replacing what it had).
    pub fn set(&self, name: &str, ips: &[IpAddr]) {
        self.zone().addresses.insert(key(name), ips.to_vec());
    }

    /// The SRV records of `name` (replacing what it had).
    pub fn set_srv(&self, name: &str, records: &[Srv]) {
        self.zone().srv.insert(key(name), records.to_vec());
    }

    /// The TTL of every answer from now on, in seconds.
    pub fn set_ttl(&self, ttl: u32) {
        self.zone().ttl = ttl;
    }

    /// Answer every query this way from now on.
    pub fn set_mode(&self, mode: Mode) {
        self.zone().mode = Some(mode);
    }

    /// Queries received so far (answered or not).
    pub fn queries(&self) -> u64 {
        self.queries.load(Ordering::Relaxed)
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Backends named `b{last}` on `127.0.0.{last}` for each of `last`, all on one
/// port (a DNS name's addresses share the entry's port); returns the port.
pub async fn loopback_backends(last: &[u8]) -> (u16, Vec<crate::BackendHandle>) {
    'port: for _ in 0..50 {
        let first = tokio::net::TcpListener::bind((std::net::Ipv4Addr::new(127, 0, 0, last[0]), 0))
            .await
            .expect("bind a backend on loopback");
        let port = first.local_addr().expect("local address").port();
        let mut listeners = vec![first];
        for &x in &last[1..] {
            match tokio::net::TcpListener::bind((std::net::Ipv4Addr::new(127, 0, 0, x), port)).await
            {
                Ok(l) => listeners.push(l),
                Err(_) => continue 'port,
            }
        }
        let backends = listeners
            .into_iter()
            .zip(last)
            .map(|(l, x)| crate::spawn_backend(l, crate::BackendConfig::new(format!("b{x}"))))
            .collect();
        return (port, backends);
    }
    panic!("no port free on every loopback address asked");
}

/// `127.0.0.{last}`.
pub fn loopback(last: u8) -> IpAddr {
    IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, last))
}

fn key(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

async fn serve(socket: UdpSocket, zone: Arc<Mutex<Zone>>, queries: Arc<AtomicU64>) {
    let mut buf = vec![0u8; 4096];
    loop {
        let Ok((n, from)) = socket.recv_from(&mut buf).await else {
            continue;
        };
        queries.fetch_add(1, Ordering::Relaxed);
        let Ok(query) = Message::from_vec(&buf[..n]) else {
            continue;
        };
        let reply = {
            let zone = zone.lock().unwrap_or_else(|p| p.into_inner());
            answer(&query, &zone)
        };
        if let Some(bytes) = reply.and_then(|m| m.to_vec().ok()) {
            let _ = socket.send_to(&bytes, from).await;
        }
    }
}

fn answer(query: &Message, zone: &Zone) -> Option<Message> {
    let mut reply = Message::response(query.metadata.id, query.metadata.op_code);
    reply.metadata.message_type = MessageType::Response;
    reply.metadata.authoritative = true;
    reply.metadata.recursion_desired = query.metadata.recursion_desired;
    reply.add_queries(query.queries.clone());
    match zone.mode.unwrap_or(Mode::Answer) {
        Mode::Silent => return None,
        Mode::ServFail => {
            reply.metadata.response_code = ResponseCode::ServFail;
            return Some(reply);
        }
        Mode::NxDomain => {
            reply.metadata.response_code = ResponseCode::NXDomain;
            return Some(reply);
        }
        Mode::Answer => {}
    }
    for q in &query.queries {
        let name = q.name().clone();
        let k = key(&name.to_ascii());
        let known = zone.addresses.contains_key(&k) || zone.srv.contains_key(&k);
        if !known {
            reply.metadata.response_code = ResponseCode::NXDomain;
            continue;
        }
        let ttl = zone.ttl;
        match q.query_type() {
            RecordType::A | RecordType::AAAA => {
                for ip in zone.addresses.get(&k).into_iter().flatten() {
                    let data = match (ip, q.query_type()) {
                        (IpAddr::V4(v4), RecordType::A) => RData::A(A(*v4)),
                        (IpAddr::V6(v6), RecordType::AAAA) => RData::AAAA(AAAA(*v6)),
                        _ => continue,
                    };
                    reply.add_answer(Record::from_rdata(name.clone(), ttl, data));
                }
            }
            RecordType::SRV => {
                for (priority, weight, port, target) in zone.srv.get(&k).into_iter().flatten() {
                    let Ok(target) = Name::from_ascii(format!("{}.", key(target))) else {
                        continue;
                    };
                    let data = RData::SRV(SRV::new(*priority, *weight, *port, target));
                    reply.add_answer(Record::from_rdata(name.clone(), ttl, data));
                }
            }
            _ => {}
        }
    }
    Some(reply)
}
