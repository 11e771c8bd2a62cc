//! UDP: one socket per address (or an SO_REUSEPORT group), each with a reader task that drains
//! the socket in batches.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use sipwarden_sip::header::Transport;
use sipwarden_sip::{Limits, Message, Peer};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use crate::{Inbound, Metrics};

/// Kernel buffer asked for each socket: bursts of SIP (a call rate step, a flood) should sit
/// in the queue rather than be dropped before the gateway can look at them.
const SOCKET_BUFFER: usize = 4 << 20;

/// Binds `count` sockets to `addr`. More than one share the port with SO_REUSEPORT, so the
/// kernel spreads datagrams over them; with port 0 the first socket picks the port and the
/// others join it.
///
/// SO_REUSEPORT would also let a second gateway (or any process of the same user) join the
/// group and silently take a share of the traffic — a share of the phones' REGISTERs, each
/// answered with the other process's nonces. So the port is first bound exclusively (no
/// SO_REUSEADDR, no SO_REUSEPORT): if anyone holds it, this fails with "address in use"
/// instead of sharing.
pub(crate) fn bind(addr: SocketAddr, count: usize) -> io::Result<Vec<Arc<UdpSocket>>> {
    let count = count.max(1);
    let share = count > 1;
    if share && addr.port() != 0 {
        drop(std::net::UdpSocket::bind(addr)?);
    }
    let mut out = Vec::with_capacity(count);
    let mut addr = addr;
    for _ in 0..count {
        let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
        if share {
            s.set_reuse_port(true)?;
        }
        // Best effort: the kernel caps these at net.core.{r,w}mem_max.
        let _ = s.set_recv_buffer_size(SOCKET_BUFFER);
        let _ = s.set_send_buffer_size(SOCKET_BUFFER);
        if addr.is_ipv6() {
            s.set_only_v6(true)?;
        }
        s.set_nonblocking(true)?;
        s.bind(&addr.into())?;
        let std_sock: std::net::UdpSocket = s.into();
        let sock = UdpSocket::from_std(std_sock)?;
        addr = sock.local_addr()?;
        out.push(Arc::new(sock));
    }
    Ok(out)
}

/// Datagrams read in one go before the reader yields to the runtime.
const READ_BUDGET: usize = 256;

/// Reads datagrams until the socket fails. Each wake-up drains what is queued (a batch)
/// before awaiting again, so a burst costs one wake-up, not one per datagram. A socket that
/// never runs dry (a flood faster than one core reads) must not keep this task on its worker
/// for ever: after `READ_BUDGET` datagrams it yields, so that the call core, which the
/// reader's own sends woke on this worker, gets to run, decides the ban and answers calls.
pub(crate) fn spawn_reader(
    socket: Arc<UdpSocket>,
    limits: Limits,
    inbound: mpsc::Sender<Inbound>,
    metrics: Arc<Metrics>,
    gate: Option<Arc<dyn crate::Gate>>,
) {
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65_536];
        loop {
            if socket.readable().await.is_err() {
                return;
            }
            let mut budget = READ_BUDGET;
            loop {
                if budget == 0 {
                    budget = READ_BUDGET;
                    tokio::task::yield_now().await;
                }
                budget -= 1;
                match socket.try_recv_from(&mut buf) {
                    Ok((n, from)) => {
                        metrics.udp_received();
                        if gate.as_ref().is_some_and(|g| !g.admit(from.ip())) {
                            metrics.banned_dropped();
                            continue;
                        }
                        let data = Bytes::copy_from_slice(buf.get(..n).unwrap_or(&[]));
                        let peer = Peer {
                            transport: Transport::Udp,
                            addr: from,
                            flow: None,
                        };
                        deliver(data, peer, &limits, &inbound, &metrics);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    // ICMP errors from earlier sends surface here on Linux; they are not fatal.
                    Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => continue,
                    Err(_) => break,
                }
            }
        }
    });
}

/// Parses one self-delimited message (a datagram, or a WebSocket message) and hands it to
/// the core. What does not parse is counted and dropped: there is no stream to resynchronise.
pub(crate) fn deliver(
    data: Bytes,
    peer: Peer,
    limits: &Limits,
    inbound: &mpsc::Sender<Inbound>,
    metrics: &Metrics,
) {
    match Message::parse_datagram(data, limits) {
        Ok(msg) => {
            if inbound.try_send(Inbound { msg, peer }).is_err() {
                metrics.inbound_dropped();
            }
        }
        // Keep-alives and STUN-like noise count as parse errors only if they are not empty.
        Err(e) if e.kind == sipwarden_sip::ParseErrorKind::Empty => {}
        Err(_) => metrics.parse_error(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A second gateway on the same address is refused, whether it asks for one socket or a
    /// group: before, SO_REUSEADDR/SO_REUSEPORT let it in and the two split the traffic.
    #[tokio::test]
    async fn a_second_binder_of_the_port_is_refused() {
        for count in [1, 2] {
            let first = bind("127.0.0.61:0".parse().unwrap(), count).unwrap();
            assert_eq!(first.len(), count);
            let addr = first[0].local_addr().unwrap();
            assert!(first.iter().all(|s| s.local_addr().unwrap() == addr));
            for again in [1, 2] {
                let err = bind(addr, again).err().map(|e| e.kind());
                assert_eq!(err, Some(io::ErrorKind::AddrInUse), "{count} then {again}");
            }
            drop(first);
            assert_eq!(bind(addr, 2).unwrap().len(), 2, "free again once closed");
        }
    }
}
