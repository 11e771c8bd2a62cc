//! Transaction matching keys (RFC 3261 §17.1.3 for clients, §17.2.3 for servers).

use sipwarden_sip::{Message, Method};

/// The method part of a key: ACK matches the INVITE transaction it acknowledges.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum KeyMethod {
    Known(Method),
    Extension(Box<str>),
}

impl KeyMethod {
    fn of(method: Method, text: &str) -> Self {
        match method {
            Method::Ack => Self::Known(Method::Invite),
            Method::Extension => Self::Extension(text.into()),
            m => Self::Known(m),
        }
    }
}

/// Key of a server transaction.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct ServerKey {
    /// The branch, or for RFC 2543 peers a digest of the fields §17.2.3 lists.
    branch: Box<str>,
    /// sent-by of the top Via (host and port as written).
    sent_by: Box<str>,
    method: KeyMethod,
}

impl ServerKey {
    /// The key of a request. `as_method` overrides the request's method (a CANCEL looks up the
    /// INVITE it cancels this way).
    pub(crate) fn of(msg: &Message, as_method: Option<Method>) -> Option<Self> {
        let via = msg.top_via()?;
        let sent_by = match via.port {
            Some(p) => format!("{}:{p}", via.host),
            None => via.host.to_string(),
        };
        let method_text = msg.method_str()?;
        let method = match as_method {
            Some(m) => KeyMethod::Known(m),
            None => KeyMethod::of(msg.method()?, method_text),
        };
        let branch: Box<str> = if via.is_rfc3261_branch() {
            via.branch()?.into()
        } else {
            // RFC 2543: Request-URI, To tag, From tag, Call-ID, CSeq number, top Via. For an
            // ACK the To tag is the one the response added, so it is left out.
            let to_tag = if msg.method() == Some(Method::Ack) {
                ""
            } else {
                msg.to_tag().unwrap_or("")
            };
            format!(
                "2543|{}|{}|{}|{}|{}|{}",
                msg.request_uri_str()?,
                to_tag,
                msg.from_tag().unwrap_or(""),
                msg.call_id()?,
                msg.cseq()?.seq,
                via.branch().unwrap_or("")
            )
            .into()
        };
        Some(Self {
            branch,
            sent_by: sent_by.into(),
            method,
        })
    }
}

/// Key of a client transaction: the branch we generated and the CSeq method.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct ClientKey {
    branch: Box<str>,
    method: KeyMethod,
}

impl ClientKey {
    /// The key of a request we send or of a response to it.
    pub(crate) fn of(msg: &Message) -> Option<Self> {
        let cseq = msg.cseq()?;
        let method = match cseq.method {
            Method::Extension => KeyMethod::Extension(cseq.method_text.into()),
            m => KeyMethod::Known(m),
        };
        Some(Self {
            branch: msg.branch()?.into(),
            method,
        })
    }
}

/// Identifies the INVITE a 2xx-ACK belongs to: the ACK has its own branch (§17.1.1.3), so
/// it is matched by dialog and CSeq number instead.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct AckKey {
    call_id: Box<str>,
    cseq: u32,
    from_tag: Box<str>,
}

impl AckKey {
    pub(crate) fn of(msg: &Message) -> Option<Self> {
        Some(Self {
            call_id: msg.call_id()?.into(),
            cseq: msg.cseq()?.seq,
            from_tag: msg.from_tag().unwrap_or("").into(),
        })
    }
}
