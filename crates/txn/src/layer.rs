//! The transaction layer: every client and server transaction of one endpoint, their timers,
//! and the messages they retransmit or absorb.
//!
//! Sans-io and quinn-style: inputs are [`TxLayer::on_request`], [`TxLayer::on_response`],
//! the `send_*` calls of the transaction user (TU) and [`TxLayer::handle_timeout`]; outputs are
//! drained with [`TxLayer::poll_transmit`] and [`TxLayer::poll_event`], and
//! [`TxLayer::poll_timeout`] says when to call `handle_timeout` next. Time is always passed
//! in, so every timer can be tested without sleeping.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::fmt;
use std::time::{Duration, Instant};

use bytes::Bytes;
use sipwarden_sip::{HeaderName, Message, Method, StatusCode};

use crate::key::{AckKey, ClientKey, ServerKey};
use crate::timers::Timers;

/// Identifies one transaction within a layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TxId(u64);

impl fmt::Display for TxId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "tx{}", self.0)
    }
}

/// Bytes to send to a destination. `D` is the caller's idea of an address (socket address,
/// connection id …); the layer only stores and returns it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transmit<D> {
    /// Where to.
    pub dest: D,
    /// What.
    pub bytes: Bytes,
}

/// What the transaction user must act on.
#[derive(Debug)]
#[must_use]
pub enum Event {
    /// A new request opened a server transaction; answer it with [`TxLayer::send_response`].
    Request {
        /// The server transaction.
        tx: TxId,
        /// The request.
        msg: Message,
    },
    /// An ACK that is not part of a non-2xx transaction: the ACK to a 2xx (matched to the
    /// INVITE server transaction when it is still known) or a stray one.
    Ack {
        /// The INVITE server transaction whose 2xx this acknowledges, if known.
        invite: Option<TxId>,
        /// The ACK.
        msg: Message,
    },
    /// The peer cancelled this INVITE server transaction; the layer has answered the CANCEL
    /// with 200. The TU should answer the INVITE with 487 (and cancel its other leg).
    Cancelled {
        /// The cancelled INVITE server transaction.
        invite: TxId,
    },
    /// A response on a client transaction (provisional, final, and every 2xx of a forked
    /// INVITE). Retransmitted final responses are absorbed and not reported again.
    Response {
        /// The client transaction.
        tx: TxId,
        /// The response.
        msg: Message,
    },
    /// A client transaction got no final response in time (timers B, F, or the INVITE
    /// proceeding limit): act as if a 408 had arrived.
    Timeout {
        /// The client transaction.
        tx: TxId,
    },
    /// A 2xx this layer sent on an INVITE server transaction was never acknowledged (timer
    /// L): the TU should end the dialog (RFC 3261 §13.3.1.4).
    AckTimeout {
        /// The INVITE server transaction.
        tx: TxId,
    },
}

/// Why a TU call was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TxError {
    /// No such transaction (it ended, or never existed).
    NoSuchTransaction,
    /// The message cannot be used here (a response passed as request, no branch, ACK sent as
    /// a transaction …).
    BadMessage,
    /// A final response was already sent on this transaction.
    AlreadyFinal,
    /// The transaction table is full.
    Full,
}

impl fmt::Display for TxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::NoSuchTransaction => "no such transaction",
            Self::BadMessage => "message not valid for this transaction",
            Self::AlreadyFinal => "final response already sent",
            Self::Full => "transaction table full",
        })
    }
}

impl std::error::Error for TxError {}

/// Settings of a layer.
#[derive(Clone, Debug)]
pub struct Config {
    /// T1, T2, T4.
    pub timers: Timers,
    /// How long an INVITE client transaction waits for a final response once it has a
    /// provisional one (RFC 3261 §16.6 timer C; more than 3 minutes).
    pub invite_proceeding_timeout: Duration,
    /// Answer every new INVITE with 100 Trying at once (RFC 3261 §17.2.1: a TU that will not
    /// answer within 200 ms must), which stops the peer's retransmissions early.
    pub auto_trying: bool,
    /// Most transactions held at once; new requests beyond it get 503 with Retry-After (BYE
    /// and CANCEL never do). Non-INVITE and answered INVITE transactions linger 64·T1 over
    /// UDP (RFC 3261 timer J, RFC 6026 timer M), so a sustained N calls/s holds about 75·N.
    pub max_transactions: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            timers: Timers::default(),
            invite_proceeding_timeout: Duration::from_secs(181),
            auto_trying: true,
            max_transactions: 250_000,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CState {
    /// Calling (INVITE) or Trying (non-INVITE): request sent, nothing back yet.
    Calling,
    Proceeding,
    /// Final non-2xx received (INVITE) or any final (non-INVITE): absorbing retransmissions.
    Completed,
    /// 2xx received on an INVITE (RFC 6026): 2xx retransmissions are answered with our ACK.
    Accepted,
}

struct ClientTx<D> {
    invite: bool,
    state: CState,
    key: ClientKey,
    /// The request, while a CANCEL or an ACK may still have to be built from it; dropped at
    /// the final response so lingering transactions hold only their bytes.
    request: Option<Message>,
    wire: Bytes,
    dest: D,
    reliable: bool,
    interval: Duration,
    retransmit_at: Option<Instant>,
    timeout_at: Option<Instant>,
    /// The ACK to resend on a retransmitted final response (non-2xx), or on a retransmitted
    /// 2xx whose To tag it carries.
    ack: Option<(Option<Box<str>>, Bytes)>,
    /// To tags of 2xx responses already reported (forking).
    reported_2xx: Vec<Box<str>>,
    cancel_pending: bool,
    cancelled: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SState {
    /// Non-INVITE before any response.
    Trying,
    Proceeding,
    /// Final non-2xx sent (INVITE: waiting for ACK) or any final (non-INVITE).
    Completed,
    /// ACK received for a non-2xx final (INVITE only).
    Confirmed,
    /// 2xx sent on an INVITE (RFC 6026): retransmitted until the ACK arrives.
    Accepted,
}

struct ServerTx<D> {
    invite: bool,
    state: SState,
    key: ServerKey,
    ack_key: Option<AckKey>,
    last_response: Option<Bytes>,
    dest: D,
    reliable: bool,
    interval: Duration,
    retransmit_at: Option<Instant>,
    timeout_at: Option<Instant>,
    /// The ACK for our 2xx arrived (Accepted state).
    acked: bool,
    /// The request this transaction answers, so the TU can build responses from it; dropped
    /// once the final response is sent.
    request: Option<Message>,
}

impl<D> ServerTx<D> {
    /// A server transaction for `msg` that has sent nothing yet.
    fn new(
        invite: bool,
        key: ServerKey,
        msg: &Message,
        dest: D,
        reliable: bool,
        t1: Duration,
    ) -> Self {
        Self {
            invite,
            state: if invite {
                SState::Proceeding
            } else {
                SState::Trying
            },
            key,
            ack_key: None,
            last_response: None,
            dest,
            reliable,
            interval: t1,
            retransmit_at: None,
            timeout_at: None,
            acked: false,
            request: Some(msg.clone()),
        }
    }
}

enum Tx<D> {
    Client(ClientTx<D>),
    Server(ServerTx<D>),
}

impl<D> Tx<D> {
    fn deadline(&self) -> Option<Instant> {
        let (a, b) = match self {
            Self::Client(c) => (c.retransmit_at, c.timeout_at),
            Self::Server(s) => (s.retransmit_at, s.timeout_at),
        };
        match (a, b) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// Counts of live transactions, for metrics and for checking that nothing is left behind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Client transactions.
    pub client: usize,
    /// Server transactions.
    pub server: usize,
    /// Requests refused (503) or not sent because the table was full, since start.
    pub refused: u64,
}

/// Every transaction of one endpoint.
pub struct TxLayer<D> {
    config: Config,
    next_id: u64,
    txs: HashMap<TxId, Tx<D>>,
    client_keys: HashMap<ClientKey, TxId>,
    server_keys: HashMap<ServerKey, TxId>,
    ack_keys: HashMap<AckKey, TxId>,
    timers: BinaryHeap<Reverse<(Instant, TxId)>>,
    transmits: VecDeque<Transmit<D>>,
    events: VecDeque<Event>,
    clients: usize,
    refused: u64,
}

impl<D: Clone> TxLayer<D> {
    /// An empty layer.
    pub fn new(config: Config) -> Self {
        Self {
            config,
            next_id: 1,
            txs: HashMap::new(),
            client_keys: HashMap::new(),
            server_keys: HashMap::new(),
            ack_keys: HashMap::new(),
            timers: BinaryHeap::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            clients: 0,
            refused: 0,
        }
    }

    /// Live transactions.
    pub fn counts(&self) -> Counts {
        Counts {
            client: self.clients,
            server: self.txs.len() - self.clients,
            refused: self.refused,
        }
    }

    /// The next message to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit<D>> {
        self.transmits.pop_front()
    }

    /// The next event for the TU.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`TxLayer::handle_timeout`] must next be called.
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        // Drop heap entries of transactions that ended or moved their deadline.
        while let Some(Reverse((at, id))) = self.timers.peek().copied() {
            match self.txs.get(&id).and_then(Tx::deadline) {
                Some(d) if d == at => return Some(at),
                _ => {
                    self.timers.pop();
                }
            }
        }
        None
    }

    fn alloc_id(&mut self) -> TxId {
        let id = TxId(self.next_id);
        self.next_id += 1;
        id
    }

    fn schedule(&mut self, id: TxId) {
        if let Some(d) = self.txs.get(&id).and_then(Tx::deadline) {
            self.timers.push(Reverse((d, id)));
        }
    }

    fn remove(&mut self, id: TxId) {
        match self.txs.remove(&id) {
            Some(Tx::Client(c)) => {
                self.clients -= 1;
                self.client_keys.remove(&c.key);
            }
            Some(Tx::Server(s)) => {
                self.server_keys.remove(&s.key);
                if let Some(k) = s.ack_key {
                    if self.ack_keys.get(&k) == Some(&id) {
                        self.ack_keys.remove(&k);
                    }
                }
            }
            None => {}
        }
    }

    fn send(&mut self, dest: D, bytes: Bytes) {
        self.transmits.push_back(Transmit { dest, bytes });
    }

    /// Sends a message outside any transaction (an ACK to a 2xx whose transaction is gone, a
    /// stateless reply).
    pub fn send_stateless(&mut self, dest: D, msg: &Message) {
        self.send(dest, msg.to_bytes());
    }

    // === server side ===

    /// A request arrived from `source` (where responses go). `reliable` says whether it came
    /// over a stream transport. Retransmissions are absorbed (the last response is resent);
    /// new requests become [`Event::Request`]; ACKs and CANCELs are matched as §17.2.3 and
    /// §9.2 describe.
    pub fn on_request(&mut self, now: Instant, msg: Message, source: D, reliable: bool) {
        let Some(method) = msg.method() else { return };
        let Some(key) = ServerKey::of(&msg, None) else {
            return;
        };
        match method {
            Method::Ack => self.on_ack(now, msg, key),
            Method::Cancel => self.on_cancel(now, msg, key, source, reliable),
            _ => {
                if let Some(&id) = self.server_keys.get(&key) {
                    // A retransmission: answer with the last response, if any.
                    if let Some(Tx::Server(s)) = self.txs.get(&id) {
                        if let Some(last) = s.last_response.clone() {
                            let dest = s.dest.clone();
                            self.send(dest, last);
                        }
                    }
                    return;
                }
                // A BYE ends a dialog and frees what it holds: never refuse one for capacity.
                if self.txs.len() >= self.config.max_transactions && method != Method::Bye {
                    self.refused += 1;
                    self.reply_stateless(
                        &msg,
                        source,
                        StatusCode::SERVICE_UNAVAILABLE,
                        &[("Retry-After", "5")],
                    );
                    return;
                }
                let invite = method == Method::Invite;
                let id = self.alloc_id();
                let tx = ServerTx::new(
                    invite,
                    key.clone(),
                    &msg,
                    source,
                    reliable,
                    self.config.timers.t1,
                );
                self.txs.insert(id, Tx::Server(tx));
                self.server_keys.insert(key, id);
                if invite && self.config.auto_trying {
                    if let Ok(trying) = Message::response_to(&msg, StatusCode::TRYING, None, None) {
                        let _ = self.send_response(now, id, &trying);
                    }
                }
                self.events.push_back(Event::Request { tx: id, msg });
            }
        }
    }

    fn reply_stateless(
        &mut self,
        req: &Message,
        dest: D,
        status: StatusCode,
        extra: &[(&str, &str)],
    ) {
        if let Ok(mut r) = Message::response_to(req, status, None, None) {
            for (n, v) in extra {
                let _ = r.push_header_text(n, v);
            }
            let _ = r.finish();
            self.send(dest, r.to_bytes());
        }
    }

    fn on_ack(&mut self, now: Instant, msg: Message, key: ServerKey) {
        // ACK to a non-2xx final: same branch as the INVITE (§17.1.1.3).
        if let Some(&id) = self.server_keys.get(&key) {
            if let Some(Tx::Server(s)) = self.txs.get_mut(&id) {
                if s.invite && s.state == SState::Completed {
                    s.state = SState::Confirmed;
                    s.retransmit_at = None;
                    s.timeout_at = Some(now + self.config.timers.t4_or_zero(s.reliable));
                    self.settle(now, id);
                    return;
                }
                if s.state == SState::Confirmed {
                    return; // retransmitted ACK
                }
            }
        }
        // ACK to a 2xx: a transaction of its own, matched to the INVITE by dialog and CSeq.
        let invite = AckKey::of(&msg).and_then(|k| self.ack_keys.get(&k).copied());
        if let Some(id) = invite {
            if let Some(Tx::Server(s)) = self.txs.get_mut(&id) {
                if s.state == SState::Accepted && !s.acked {
                    // First ACK: stop retransmitting the 2xx; linger T4 to absorb late INVITE
                    // retransmissions.
                    s.acked = true;
                    s.retransmit_at = None;
                    s.timeout_at = Some(now + self.config.timers.t4_or_zero(s.reliable));
                    self.settle(now, id);
                } else {
                    return; // a retransmitted ACK
                }
            }
        }
        self.events.push_back(Event::Ack { invite, msg });
    }

    /// Treats a 2xx sent on INVITE server transaction `tx` as acknowledged without its ACK:
    /// a later request in the same dialog (a BYE, say) proves the peer got the 2xx, so
    /// retransmitting it further only wastes packets (the ACK was lost on the way).
    pub fn assume_acknowledged(&mut self, now: Instant, tx: TxId) {
        let t4 = self.config.timers;
        if let Some(Tx::Server(s)) = self.txs.get_mut(&tx) {
            if s.state == SState::Accepted && !s.acked {
                s.acked = true;
                s.retransmit_at = None;
                s.timeout_at = Some(now + t4.t4_or_zero(s.reliable));
                self.settle(now, tx);
            }
        }
    }

    fn on_cancel(&mut self, now: Instant, msg: Message, key: ServerKey, source: D, reliable: bool) {
        if let Some(&id) = self.server_keys.get(&key) {
            // A retransmitted CANCEL.
            if let Some(Tx::Server(s)) = self.txs.get(&id) {
                if let Some(last) = s.last_response.clone() {
                    let dest = s.dest.clone();
                    self.send(dest, last);
                }
            }
            return;
        }
        let target = ServerKey::of(&msg, Some(Method::Invite))
            .and_then(|k| self.server_keys.get(&k).copied());
        let Some(invite_id) = target else {
            // §9.2: no matching transaction.
            self.reply_stateless(&msg, source, StatusCode::CALL_DOES_NOT_EXIST, &[]);
            return;
        };
        let id = self.alloc_id();
        let tx = ServerTx::new(
            false,
            key.clone(),
            &msg,
            source,
            reliable,
            self.config.timers.t1,
        );
        self.txs.insert(id, Tx::Server(tx));
        self.server_keys.insert(key, id);
        if let Ok(ok) = Message::response_to(&msg, StatusCode::OK, None, None) {
            let _ = self.send_response(now, id, &ok);
        }
        let still_open = matches!(self.txs.get(&invite_id), Some(Tx::Server(s)) if s.state == SState::Proceeding);
        if still_open {
            self.events
                .push_back(Event::Cancelled { invite: invite_id });
        }
    }

    /// The INVITE server transaction a CANCEL would cancel, if one is open (RFC 3261 §9.2
    /// matching). Lets the TU look at a CANCEL's source before the layer acts on it.
    pub fn cancel_target(&self, cancel: &Message) -> Option<TxId> {
        let key = ServerKey::of(cancel, Some(Method::Invite))?;
        self.server_keys.get(&key).copied()
    }

    /// Where a server transaction's responses go: the source of its request.
    pub fn server_dest(&self, tx: TxId) -> Option<&D> {
        match self.txs.get(&tx) {
            Some(Tx::Server(s)) => Some(&s.dest),
            _ => None,
        }
    }

    /// The request a server transaction answers (for building responses to it).
    pub fn server_request(&self, tx: TxId) -> Option<&Message> {
        match self.txs.get(&tx) {
            Some(Tx::Server(s)) => s.request.as_ref(),
            _ => None,
        }
    }

    /// Sends a response on a server transaction. A 2xx to an INVITE is retransmitted by the
    /// layer until its ACK arrives (RFC 6026 "Accepted"); a non-2xx final to an INVITE until
    /// the ACK for it arrives (timer G) or timer H fires.
    pub fn send_response(&mut self, now: Instant, tx: TxId, msg: &Message) -> Result<(), TxError> {
        let status = msg.status().ok_or(TxError::BadMessage)?;
        let t = self.config.timers;
        let Some(Tx::Server(s)) = self.txs.get_mut(&tx) else {
            return Err(TxError::NoSuchTransaction);
        };
        if !matches!(s.state, SState::Trying | SState::Proceeding) {
            return Err(TxError::AlreadyFinal);
        }
        let bytes = msg.to_bytes();
        s.last_response = Some(bytes.clone());
        let dest = s.dest.clone();
        if status.is_provisional() {
            s.state = SState::Proceeding;
        } else if s.invite && status.is_success() {
            s.state = SState::Accepted;
            s.interval = t.t1;
            s.retransmit_at = (!s.reliable).then(|| now + t.t1);
            s.timeout_at = Some(now + t.timeout());
            let key = AckKey::of(msg);
            s.ack_key = key.clone();
            if let Some(k) = key {
                self.ack_keys.insert(k, tx);
            }
        } else if s.invite {
            s.state = SState::Completed;
            s.interval = t.t1;
            s.retransmit_at = (!s.reliable).then(|| now + t.t1);
            s.timeout_at = Some(now + t.timeout());
        } else {
            s.state = SState::Completed;
            s.timeout_at = Some(now + t.timer_j(s.reliable));
        }
        if status.is_final() {
            // Lingering in Completed/Accepted needs only the response bytes.
            s.request = None;
        }
        self.send(dest, bytes);
        self.settle(now, tx);
        Ok(())
    }

    /// Removes a transaction whose timers are all zero, or schedules its next deadline.
    fn settle(&mut self, now: Instant, id: TxId) {
        match self.txs.get(&id).and_then(Tx::deadline) {
            Some(d) if d <= now => self.fire(now, id),
            Some(_) => self.schedule(id),
            None => {}
        }
    }

    // === client side ===

    /// Sends a request in a new client transaction. The request must carry its top Via with
    /// a fresh RFC 3261 branch; ACK is not a transaction (use [`TxLayer::send_ack`]).
    pub fn send_request(
        &mut self,
        now: Instant,
        msg: Message,
        dest: D,
        reliable: bool,
    ) -> Result<TxId, TxError> {
        let method = msg.method().ok_or(TxError::BadMessage)?;
        if method == Method::Ack {
            return Err(TxError::BadMessage);
        }
        let key = ClientKey::of(&msg).ok_or(TxError::BadMessage)?;
        if self.client_keys.contains_key(&key) {
            return Err(TxError::BadMessage);
        }
        // BYE and CANCEL end things: the gateway's own teardown must never be refused.
        if self.txs.len() >= self.config.max_transactions
            && !matches!(method, Method::Bye | Method::Cancel)
        {
            self.refused += 1;
            return Err(TxError::Full);
        }
        let t = self.config.timers;
        let invite = method == Method::Invite;
        let wire = msg.to_bytes();
        let id = self.alloc_id();
        let tx = ClientTx {
            invite,
            state: CState::Calling,
            key: key.clone(),
            request: Some(msg),
            wire: wire.clone(),
            dest: dest.clone(),
            reliable,
            interval: t.t1,
            retransmit_at: (!reliable).then(|| now + t.t1),
            timeout_at: Some(now + t.timeout()),
            ack: None,
            reported_2xx: Vec::new(),
            cancel_pending: false,
            cancelled: false,
        };
        self.txs.insert(id, Tx::Client(tx));
        self.client_keys.insert(key, id);
        self.clients += 1;
        self.send(dest, wire);
        self.schedule(id);
        Ok(id)
    }

    /// Sends the ACK for a 2xx received on INVITE client transaction `tx` (the TU builds it,
    /// §13.2.2.4). The layer resends it whenever that 2xx is retransmitted.
    pub fn send_ack(&mut self, tx: TxId, ack: &Message, dest: D) {
        let bytes = ack.to_bytes();
        if let Some(Tx::Client(c)) = self.txs.get_mut(&tx) {
            c.ack = Some((ack.to_tag().map(Into::into), bytes.clone()));
        }
        self.send(dest, bytes);
    }

    /// Cancels INVITE client transaction `tx` (§9.1): the CANCEL goes out now if a provisional
    /// response has arrived, otherwise as soon as one does. Returns the CANCEL's transaction
    /// once it is sent.
    pub fn cancel(&mut self, now: Instant, tx: TxId) -> Result<Option<TxId>, TxError> {
        let Some(Tx::Client(c)) = self.txs.get_mut(&tx) else {
            return Err(TxError::NoSuchTransaction);
        };
        if !c.invite {
            return Err(TxError::BadMessage);
        }
        if c.cancelled || !matches!(c.state, CState::Calling | CState::Proceeding) {
            return Ok(None);
        }
        if c.state == CState::Calling {
            c.cancel_pending = true;
            return Ok(None);
        }
        self.send_cancel(now, tx).map(Some)
    }

    fn send_cancel(&mut self, now: Instant, tx: TxId) -> Result<TxId, TxError> {
        let Some(Tx::Client(c)) = self.txs.get_mut(&tx) else {
            return Err(TxError::NoSuchTransaction);
        };
        c.cancelled = true;
        c.cancel_pending = false;
        let cancel = c
            .request
            .as_ref()
            .map(build_cancel)
            .ok_or(TxError::BadMessage)?
            .map_err(|_| TxError::BadMessage)?;
        let (dest, reliable) = (c.dest.clone(), c.reliable);
        self.send_request(now, cancel, dest, reliable)
    }

    /// Forgets client transaction `tx` without telling anyone: no more retransmissions, and
    /// a late answer matches nothing. For requests whose answer no longer matters (a qualify
    /// OPTIONS past its own deadline). Whether there was one.
    pub fn abandon(&mut self, tx: TxId) -> bool {
        if !matches!(self.txs.get(&tx), Some(Tx::Client(_))) {
            return false;
        }
        self.remove(tx);
        true
    }

    /// The transport could not reach `dest` (a connection refused, a TLS handshake that
    /// failed): every client transaction to it that has no final response yet ends as if it
    /// had timed out (RFC 3261 §17.1.1.2, §17.1.2.2: the TU is told of the transport error;
    /// §8.1.3.1 treats it as a 503, which moves a call on as a timeout does). Returns how many
    /// ended.
    pub fn transport_failed(&mut self, dest: &D) -> usize
    where
        D: PartialEq,
    {
        let ended: Vec<TxId> = self
            .txs
            .iter()
            .filter_map(|(id, t)| match t {
                Tx::Client(c)
                    if c.dest == *dest
                        && matches!(c.state, CState::Calling | CState::Proceeding) =>
                {
                    Some(*id)
                }
                _ => None,
            })
            .collect();
        for id in &ended {
            self.events.push_back(Event::Timeout { tx: *id });
            self.remove(*id);
        }
        ended.len()
    }

    /// A response arrived. Responses that match no client transaction are ignored (a proxy
    /// would forward them; the gateway originated every request it can get answers to).
    pub fn on_response(&mut self, now: Instant, msg: Message) {
        let Some(status) = msg.status() else { return };
        let Some(id) = ClientKey::of(&msg).and_then(|k| self.client_keys.get(&k).copied()) else {
            return;
        };
        let t = self.config.timers;
        let proceeding_timeout = self.config.invite_proceeding_timeout;
        let Some(Tx::Client(c)) = self.txs.get_mut(&id) else {
            return;
        };
        let mut send_cancel = false;
        let mut report = true;
        if c.invite {
            match (c.state, status.as_u16()) {
                (CState::Calling | CState::Proceeding, 100..=199) => {
                    if c.state == CState::Calling && c.cancel_pending {
                        send_cancel = true;
                    }
                    c.state = CState::Proceeding;
                    c.retransmit_at = None;
                    c.timeout_at = Some(now + proceeding_timeout);
                }
                (CState::Calling | CState::Proceeding, 200..=299) => {
                    c.state = CState::Accepted;
                    c.request = None;
                    c.retransmit_at = None;
                    c.timeout_at = Some(now + t.timeout());
                    c.reported_2xx.push(msg.to_tag().unwrap_or("").into());
                }
                (CState::Calling | CState::Proceeding, _) => {
                    c.state = CState::Completed;
                    c.retransmit_at = None;
                    c.timeout_at = Some(now + t.timer_d(c.reliable));
                    if let Some(Ok(ack)) = c.request.take().map(|r| build_ack(&r, &msg)) {
                        let bytes = ack.to_bytes();
                        c.ack = Some((None, bytes.clone()));
                        let dest = c.dest.clone();
                        self.transmits.push_back(Transmit { dest, bytes });
                    }
                }
                (CState::Completed, 300..=699) => {
                    // Retransmitted final: resend the ACK, tell nobody.
                    report = false;
                    if let Some((_, ack)) = c.ack.clone() {
                        let dest = c.dest.clone();
                        self.transmits.push_back(Transmit { dest, bytes: ack });
                    }
                }
                (CState::Accepted, 200..=299) => {
                    let tag = msg.to_tag().unwrap_or("");
                    if c.reported_2xx.iter().any(|t| &**t == tag) {
                        // Retransmitted 2xx: resend the TU's ACK if we have it.
                        report = false;
                        if let Some((Some(ack_tag), ack)) = c.ack.clone() {
                            if &*ack_tag == tag {
                                let dest = c.dest.clone();
                                self.transmits.push_back(Transmit { dest, bytes: ack });
                            }
                        }
                    } else {
                        c.reported_2xx.push(tag.into()); // another fork answered
                    }
                }
                _ => report = false,
            }
        } else {
            match (c.state, status.is_provisional()) {
                (CState::Calling | CState::Proceeding, true) => {
                    c.state = CState::Proceeding;
                    if !c.reliable {
                        c.interval = t.t2;
                    }
                }
                (CState::Calling | CState::Proceeding, false) => {
                    c.state = CState::Completed;
                    c.request = None;
                    c.retransmit_at = None;
                    c.timeout_at = Some(now + t.t4_or_zero(c.reliable));
                }
                _ => report = false,
            }
        }
        if report {
            self.events.push_back(Event::Response { tx: id, msg });
        }
        if send_cancel {
            let _ = self.send_cancel(now, id);
        }
        self.settle(now, id);
    }

    // === timers ===

    /// Fires every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(Reverse((at, id))) = self.timers.peek().copied() {
            if at > now {
                break;
            }
            self.timers.pop();
            if self.txs.get(&id).and_then(Tx::deadline) == Some(at) {
                self.fire(now, id);
            }
        }
    }

    fn fire(&mut self, now: Instant, id: TxId) {
        let t = self.config.timers;
        let mut retransmit: Option<(D, Bytes)> = None;
        let mut remove = false;
        match self.txs.get_mut(&id) {
            Some(Tx::Client(c)) => {
                if c.timeout_at.is_some_and(|d| d <= now) {
                    remove = true;
                    if matches!(c.state, CState::Calling | CState::Proceeding) {
                        self.events.push_back(Event::Timeout { tx: id });
                    }
                } else if c.retransmit_at.is_some_and(|d| d <= now) {
                    // Timer A doubles without cap; timer E doubles up to T2.
                    c.interval = if c.invite {
                        c.interval * 2
                    } else {
                        t.backoff_capped(c.interval)
                    };
                    c.retransmit_at = Some(now + c.interval);
                    retransmit = Some((c.dest.clone(), c.wire.clone()));
                }
            }
            Some(Tx::Server(s)) => {
                if s.timeout_at.is_some_and(|d| d <= now) {
                    remove = true;
                    if s.state == SState::Accepted && !s.acked {
                        self.events.push_back(Event::AckTimeout { tx: id });
                    }
                } else if s.retransmit_at.is_some_and(|d| d <= now) {
                    // Timer G (non-2xx) and the 2xx retransmission both back off up to T2.
                    s.interval = t.backoff_capped(s.interval);
                    s.retransmit_at = Some(now + s.interval);
                    retransmit = s.last_response.clone().map(|b| (s.dest.clone(), b));
                }
            }
            None => return,
        }
        if let Some((dest, bytes)) = retransmit {
            self.send(dest, bytes);
        }
        if remove {
            self.remove(id);
        } else {
            self.schedule(id);
        }
    }
}

/// The ACK for a non-2xx final response (RFC 3261 §17.1.1.3): the INVITE's Request-URI, top
/// Via, From, Call-ID, CSeq number and Route set, and the response's To (with its tag).
pub fn build_ack(
    invite: &Message,
    response: &Message,
) -> Result<Message, sipwarden_sip::EditError> {
    same_transaction(invite, Method::Ack, "ACK", response)
}

/// The CANCEL for an INVITE (RFC 3261 §9.1): same Request-URI, top Via (branch included),
/// From, To, Call-ID, CSeq number and Route set.
pub fn build_cancel(invite: &Message) -> Result<Message, sipwarden_sip::EditError> {
    same_transaction(invite, Method::Cancel, "CANCEL", invite)
}

/// A request that shares the INVITE's transaction identity (top Via, CSeq number): the ACK
/// for a non-2xx and the CANCEL. `to_from` supplies To (the response's, with its tag, for an
/// ACK; the INVITE's own for a CANCEL).
fn same_transaction(
    invite: &Message,
    method: Method,
    text: &str,
    to_from: &Message,
) -> Result<Message, sipwarden_sip::EditError> {
    let uri = invite.request_uri_str().unwrap_or("");
    let mut m = Message::request(method, text, uri)?;
    if let Some(v) = invite.top_via() {
        m.push_header(HeaderName::Via, &v.to_string())?;
    }
    m.set_max_forwards(70)?;
    copy(invite, &mut m, HeaderName::From)?;
    copy(to_from, &mut m, HeaderName::To)?;
    copy(invite, &mut m, HeaderName::CallId)?;
    if let Some(c) = invite.cseq() {
        m.push_header(HeaderName::CSeq, &format!("{} {text}", c.seq))?;
    }
    for r in invite.header_values(HeaderName::Route) {
        m.push_header(HeaderName::Route, r)?;
    }
    m.finish()?;
    Ok(m)
}

fn copy(
    from: &Message,
    to: &mut Message,
    name: HeaderName,
) -> Result<(), sipwarden_sip::EditError> {
    if let Some(v) = from.header(name) {
        to.push_header(name, v)?;
    }
    Ok(())
}
