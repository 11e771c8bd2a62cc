#!/usr/bin/env python3
"""A SIP-over-WebSocket phone (RFC 7118) for sipwarden's end-to-end tests.

It behaves like a browser phone (JsSIP, SIP.js): it connects to a WSS URL with the `sip`
subprotocol, verifying the server certificate against --ca; registers with a random
`*.invalid` host in Via and Contact, answering a digest challenge (MD5, SHA-256 or
SHA-512-256, plain or -sess, qop=auth); then answers one incoming call and waits for it to end.

Progress goes to stdout, one line per step, for a test to wait on:
    REGISTERED        the REGISTER got its 200
    INVITE RECEIVED   an INVITE came and was answered (180, then 200 with SDP)
    CALL DONE         the ACK came, then a BYE, which got its 200
Exit status 0 after CALL DONE; 1 on any failure or timeout, with the reason on stderr.

    python3 tests/ws/ws_phone.py --url wss://127.0.0.1:8443 --ca examples/lab/tls/cert.pem \\
        --user 1002 --password 'PASSWORD' --realm sipwarden.lab --pbx-timeout 20

Needs the `websockets` library (Debian: python3-websockets, installed by scripts/test.sh).
"""

import argparse
import asyncio
import base64
import hashlib
import re
import secrets
import ssl
import sys
import urllib.parse
import uuid


class Failure(Exception):
    """Why the phone gives up; printed to stderr, exit status 1."""


class Timeout(Failure):
    """Nothing came in time."""


def fail(message):
    print(f"ws_phone: {message}", file=sys.stderr, flush=True)
    sys.exit(1)


try:
    import websockets
    import websockets.exceptions
except ImportError:
    # Debian's python3-websockets installs for the system interpreter; a python3 from pyenv or
    # a venv that comes first on PATH does not look there. The library is pure Python.
    sys.path.append("/usr/lib/python3/dist-packages")
    try:
        import websockets
        import websockets.exceptions
    except ImportError:
        fail("the python module 'websockets' is missing (Debian: apt-get install python3-websockets)")


# Compact header forms (RFC 3261 §7.3.3) that a peer may send.
COMPACT = {
    "v": "via",
    "f": "from",
    "t": "to",
    "i": "call-id",
    "m": "contact",
    "l": "content-length",
    "c": "content-type",
    "k": "supported",
    "s": "subject",
}

# RFC 3261 §17.1.1.1 timers, for retransmitting the 2xx until the ACK comes (§13.3.1.4: the
# UAS core does this whatever the transport).
T1 = 0.5
T2 = 4.0

USER_AGENT = "sipwarden-ws-phone"
ALLOW = "INVITE,ACK,CANCEL,BYE,UPDATE,MESSAGE,OPTIONS,REFER,INFO,NOTIFY"


def token(n=10):
    """A random lowercase alphanumeric token, as JsSIP makes for hosts and tags."""
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
    return "".join(secrets.choice(alphabet) for _ in range(n))


class Sip:
    """One received SIP message: start line, headers in order (names lowercased, compact
    forms expanded), body."""

    def __init__(self, raw):
        head, _, self.body = raw.partition("\r\n\r\n")
        lines = head.split("\r\n")
        self.start = lines[0] if lines else ""
        self.headers = []
        for line in lines[1:]:
            if line[:1] in (" ", "\t") and self.headers:
                name, value = self.headers[-1]
                self.headers[-1] = (name, value + " " + line.strip())
                continue
            name, sep, value = line.partition(":")
            if not sep:
                continue
            name = name.strip().lower()
            self.headers.append((COMPACT.get(name, name), value.strip()))
        self.is_request = not self.start.startswith("SIP/2.0 ")
        parts = self.start.split(" ", 2)
        if self.is_request:
            self.method = parts[0] if parts else ""
            self.status = None
        else:
            self.method = None
            try:
                self.status = int(parts[1])
            except (IndexError, ValueError):
                raise Failure(f"bad status line: {self.start!r}")

    def all(self, name):
        return [v for n, v in self.headers if n == name]

    def get(self, name, default=""):
        values = self.all(name)
        return values[0] if values else default

    def cseq(self):
        num, _, method = self.get("cseq").partition(" ")
        try:
            return int(num), method.strip().upper()
        except ValueError:
            raise Failure(f"bad CSeq in {self.start!r}: {self.get('cseq')!r}")

    def call_id(self):
        return self.get("call-id")


def has_tag(name_addr):
    """Whether a From/To value carries a tag parameter (outside the URI's angle brackets)."""
    params = name_addr.rsplit(">", 1)[-1] if "<" in name_addr else name_addr
    return re.search(r";\s*tag\s*=", params, re.IGNORECASE) is not None


# --- digest (RFC 7616 as used by SIP, RFC 8760) ---

HASHES = {
    "MD5": lambda b: hashlib.md5(b).hexdigest(),
    "SHA-256": lambda b: hashlib.sha256(b).hexdigest(),
    "SHA-512-256": lambda b: hashlib.new("sha512_256", b).hexdigest(),
}


def parse_challenge(value):
    """The parameters of one `Digest ...` challenge, or None for another scheme."""
    scheme, _, rest = value.strip().partition(" ")
    if scheme.lower() != "digest":
        return None
    params = {}
    for m in re.finditer(r'([A-Za-z0-9_-]+)\s*=\s*("((?:[^"\\]|\\.)*)"|[^\s,]+)', rest):
        key = m.group(1).lower()
        params[key] = m.group(3) if m.group(3) is not None else m.group(2)
    return params


def supported(challenge):
    algorithm = challenge.get("algorithm", "MD5").upper()
    return algorithm.removesuffix("-SESS") in HASHES


def authorization(challenge, user, password, method, uri):
    """The Authorization (or Proxy-Authorization) value answering `challenge`."""
    algorithm = challenge.get("algorithm", "MD5")
    sess = algorithm.upper().endswith("-SESS")
    h = HASHES[algorithm.upper().removesuffix("-SESS")]
    realm = challenge.get("realm", "")
    nonce = challenge.get("nonce", "")
    cnonce = secrets.token_hex(8)
    nc = "00000001"
    ha1 = h(f"{user}:{realm}:{password}".encode())
    if sess:
        ha1 = h(f"{ha1}:{nonce}:{cnonce}".encode())
    ha2 = h(f"{method}:{uri}".encode())
    qops = [q.strip().lower() for q in challenge.get("qop", "").split(",") if q.strip()]
    fields = [
        f'username="{user}"',
        f'realm="{realm}"',
        f'nonce="{nonce}"',
        f'uri="{uri}"',
    ]
    if "auth" in qops:
        response = h(f"{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}".encode())
        fields.append(f'response="{response}"')
        fields += [f"algorithm={algorithm}", f'cnonce="{cnonce}"', "qop=auth", f"nc={nc}"]
    elif not qops:
        # RFC 2069 compatibility: a challenge without qop.
        response = h(f"{ha1}:{nonce}:{ha2}".encode())
        fields.append(f'response="{response}"')
        fields.append(f"algorithm={algorithm}")
    else:
        raise Failure(f"challenge offers qop={challenge.get('qop')!r}, not auth")
    if "opaque" in challenge:
        fields.append(f'opaque="{challenge["opaque"]}"')
    return "Digest " + ", ".join(fields)


# --- SDP ---

# SDES key+salt lengths (RFC 4568 §6.2, RFC 6188, RFC 7714).
SRTP_KEY_BYTES = {
    "AES_CM_128_HMAC_SHA1_80": 30,
    "AES_CM_128_HMAC_SHA1_32": 30,
    "AES_256_CM_HMAC_SHA1_80": 46,
    "AES_256_CM_HMAC_SHA1_32": 46,
    "AEAD_AES_128_GCM": 28,
    "AEAD_AES_256_GCM": 44,
}


def sdp_answer(offer):
    """A minimal audio answer that fits the offer: its profile and its first codec, with an
    SDES key when it offers SDES and a DTLS fingerprint when it offers DTLS-SRTP. Without an
    offer (a late-offer INVITE), an SRTP offer: the lab's WSS account must use SRTP."""
    session = secrets.randbelow(10**9)
    proto, pt, rtpmap, crypto, dtls = "RTP/SAVP", "0", "0 PCMU/8000", None, False
    for line in offer.splitlines():
        line = line.strip()
        if line.startswith("m=audio "):
            fields = line.split()
            if len(fields) >= 4:
                proto, pt = fields[2], fields[3]
                rtpmap = None
        elif line.startswith(f"a=rtpmap:{pt} ") and rtpmap is None:
            rtpmap = line[len("a=rtpmap:") :]
        elif line.startswith("a=crypto:") and crypto is None:
            crypto = line[len("a=crypto:") :].split()
        elif line.startswith("a=fingerprint:"):
            dtls = True
    if not offer.strip():
        crypto = ["1", "AES_CM_128_HMAC_SHA1_80"]
    lines = [
        "v=0",
        f"o=- {session} {session} IN IP4 127.0.0.1",
        "s=-",
        "c=IN IP4 127.0.0.1",
        "t=0 0",
        f"m=audio {20000 + 2 * secrets.randbelow(5000)} {proto} {pt}",
    ]
    if rtpmap:
        lines.append(f"a=rtpmap:{rtpmap}")
    if "SAVP" in proto and crypto and len(crypto) >= 2 and not dtls:
        key = secrets.token_bytes(SRTP_KEY_BYTES.get(crypto[1], 30))
        lines.append(f"a=crypto:{crypto[0]} {crypto[1]} inline:{base64.b64encode(key).decode()}")
    if dtls:
        fingerprint = ":".join(f"{b:02X}" for b in secrets.token_bytes(32))
        lines += ["a=setup:active", f"a=fingerprint:sha-256 {fingerprint}"]
    lines.append("a=sendrecv")
    return "\r\n".join(lines) + "\r\n"


# --- the phone ---


class Phone:
    def __init__(self, args, ws):
        self.args = args
        self.ws = ws
        self.loop = asyncio.get_running_loop()
        # JsSIP's habits: a random *.invalid host for Via and Contact, since a browser has no
        # address of its own to give; the gateway must answer on the connection instead.
        self.host = f"{token(12)}.invalid"
        self.instance = f"<urn:uuid:{uuid.uuid4()}>"
        self.contact_uri = f"sip:{args.user}@{self.host};transport=ws"
        self.aor = f"sip:{args.user}@{args.realm}"

    def log(self, direction, text):
        if self.args.verbose:
            print(f"--- {direction}\n{text}", file=sys.stderr, flush=True)

    async def send(self, text):
        self.log("sent", text)
        await self.ws.send(text)

    async def receive(self, deadline, waiting_for):
        """The next SIP message; Timeout when `deadline` passes first."""
        while True:
            remaining = deadline - self.loop.time()
            if remaining <= 0:
                raise Timeout(f"timed out waiting for {waiting_for}")
            try:
                raw = await asyncio.wait_for(self.ws.recv(), remaining)
            except asyncio.TimeoutError:
                raise Timeout(f"timed out waiting for {waiting_for}") from None
            except websockets.exceptions.ConnectionClosed as e:
                raise Failure(f"connection closed while waiting for {waiting_for}: {e}") from None
            if isinstance(raw, bytes):
                raw = raw.decode("utf-8", errors="replace")
            self.log("received", raw)
            msg = Sip(raw)
            if msg.is_request and msg.method == "OPTIONS":
                # Keep-alive or qualify probes from the gateway: answer and keep waiting.
                await self.send(self.response(msg, 200, "OK"))
                continue
            return msg

    def response(self, req, code, reason, to_tag=None, body="", dialog=False):
        """A response to `req` (RFC 3261 §8.2.6): its Via, From, Call-ID and CSeq copied, its
        To with our tag, and for a dialog-creating response Record-Route and our Contact."""
        to = req.get("to")
        if to_tag and not has_tag(to):
            to = f"{to};tag={to_tag}"
        lines = [f"SIP/2.0 {code} {reason}"]
        lines += [f"Via: {v}" for v in req.all("via")]
        if dialog:
            lines += [f"Record-Route: {r}" for r in req.all("record-route")]
        lines += [
            f"From: {req.get('from')}",
            f"To: {to}",
            f"Call-ID: {req.call_id()}",
            f"CSeq: {req.get('cseq')}",
        ]
        if dialog:
            lines += [f"Contact: <{self.contact_uri}>", f"Allow: {ALLOW}", "Supported: outbound"]
        lines.append(f"User-Agent: {USER_AGENT}")
        if body:
            lines.append("Content-Type: application/sdp")
        lines.append(f"Content-Length: {len(body.encode())}")
        return "\r\n".join(lines) + "\r\n\r\n" + body

    def register_request(self, call_id, from_tag, cseq, auth=None):
        header, value = auth if auth else (None, None)
        lines = [
            f"REGISTER sip:{self.args.realm} SIP/2.0",
            f"Via: SIP/2.0/WSS {self.host};branch=z9hG4bK{token(16)}",
            "Max-Forwards: 69",
            f"To: <{self.aor}>",
            f"From: <{self.aor}>;tag={from_tag}",
            f"Call-ID: {call_id}",
            f"CSeq: {cseq} REGISTER",
        ]
        if header:
            lines.append(f"{header}: {value}")
        lines += [
            f'Contact: <{self.contact_uri}>;+sip.ice;reg-id=1;+sip.instance="{self.instance}"'
            f";expires={self.args.expires}",
            f"Expires: {self.args.expires}",
            f"Allow: {ALLOW}",
            "Supported: path,gruu,outbound",
            f"User-Agent: {USER_AGENT}",
            "Content-Length: 0",
        ]
        return "\r\n".join(lines) + "\r\n\r\n"

    async def final_response(self, call_id, cseq, deadline):
        """The final response to our REGISTER with this Call-ID and CSeq; other traffic is
        skipped (and requests other than OPTIONS are refused: we are not in a call yet)."""
        while True:
            msg = await self.receive(deadline, f"the response to REGISTER (CSeq {cseq})")
            if msg.is_request:
                if msg.method != "ACK":
                    await self.send(self.response(msg, 486, "Busy Here", to_tag=token()))
                continue
            if msg.call_id() != call_id or msg.cseq() != (cseq, "REGISTER"):
                continue
            if msg.status >= 200:
                return msg

    async def register(self):
        call_id, from_tag, cseq = token(22), token(10), 1
        deadline = self.loop.time() + self.args.timeout
        await self.send(self.register_request(call_id, from_tag, cseq))
        resp = await self.final_response(call_id, cseq, deadline)
        if resp.status in (401, 407):
            challenge_header, answer_header = (
                ("www-authenticate", "Authorization")
                if resp.status == 401
                else ("proxy-authenticate", "Proxy-Authorization")
            )
            challenges = [c for c in map(parse_challenge, resp.all(challenge_header)) if c]
            # RFC 7616 §3.7, RFC 8760 §2.4: the first challenge whose algorithm we support.
            usable = [c for c in challenges if supported(c)]
            if not usable:
                offered = [c.get("algorithm", "MD5") for c in challenges]
                raise Failure(f"{resp.status} offers no digest algorithm this phone supports: {offered}")
            challenge = usable[0]
            if challenge.get("realm") != self.args.realm:
                raise Failure(
                    f"challenged for realm {challenge.get('realm')!r}, expected {self.args.realm!r}"
                )
            value = authorization(
                challenge, self.args.user, self.args.password, "REGISTER", f"sip:{self.args.realm}"
            )
            cseq += 1
            await self.send(
                self.register_request(call_id, from_tag, cseq, (answer_header, value))
            )
            resp = await self.final_response(call_id, cseq, deadline)
        if resp.status != 200:
            raise Failure(f"REGISTER answered {resp.start!r}")
        print("REGISTERED", flush=True)

    async def answer_call(self):
        deadline = self.loop.time() + self.args.pbx_timeout
        while True:
            invite = await self.receive(deadline, "an INVITE")
            if invite.is_request and invite.method == "INVITE":
                break
            if invite.is_request and invite.method != "ACK":
                await self.send(self.response(invite, 481, "Call/Transaction Does Not Exist"))
        call_id, (invite_cseq, _) = invite.call_id(), invite.cseq()
        to_tag = token(10)
        await self.send(self.response(invite, 180, "Ringing", to_tag, dialog=True))
        ok = self.response(invite, 200, "OK", to_tag, body=sdp_answer(invite.body), dialog=True)
        await self.send(ok)
        print("INVITE RECEIVED", flush=True)

        # Until the ACK: retransmit the 200 at T1, doubling up to T2 (RFC 3261 §13.3.1.4).
        deadline = self.loop.time() + self.args.pbx_timeout
        interval = T1
        while True:
            retransmit = min(self.loop.time() + interval, deadline)
            try:
                msg = await self.receive(retransmit, "the ACK")
            except Timeout:
                if self.loop.time() >= deadline:
                    raise
                await self.send(ok)
                interval = min(interval * 2, T2)
                continue
            if msg.is_request and msg.call_id() == call_id:
                if msg.method == "ACK" and msg.cseq()[0] == invite_cseq:
                    break
                if msg.method == "INVITE" and msg.cseq()[0] == invite_cseq:
                    await self.send(ok)  # a retransmitted INVITE gets the 200 again
                    continue
                if msg.method == "CANCEL":
                    # Too late to cancel: the call is answered (RFC 3261 §9.2).
                    await self.send(self.response(msg, 200, "OK", to_tag))
                    continue
                if msg.method == "BYE":
                    await self.send(self.response(msg, 200, "OK", to_tag))
                    raise Failure("BYE came before the ACK")
            if msg.is_request and msg.method != "ACK":
                await self.send(self.response(msg, 481, "Call/Transaction Does Not Exist"))

        deadline = self.loop.time() + self.args.pbx_timeout
        while True:
            msg = await self.receive(deadline, "the BYE")
            if not msg.is_request or msg.method == "ACK":
                continue
            if msg.call_id() != call_id:
                await self.send(self.response(msg, 486, "Busy Here", to_tag=token()))
                continue
            if msg.method == "BYE":
                await self.send(self.response(msg, 200, "OK", to_tag))
                break
            if msg.method in ("INVITE", "UPDATE"):
                # A session refresh or a re-offer in the call: accept it as it is.
                body = sdp_answer(msg.body) if msg.body.strip() else ""
                await self.send(self.response(msg, 200, "OK", to_tag, body=body, dialog=True))
                continue
            await self.send(self.response(msg, 200, "OK", to_tag))
        print("CALL DONE", flush=True)


async def connect(args):
    url = urllib.parse.urlparse(args.url)
    if url.scheme != "wss" or not url.hostname:
        raise Failure(f"--url must be wss://HOST:PORT, not {args.url!r}")
    try:
        tls = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=args.ca)
    except (OSError, ssl.SSLError) as e:
        raise Failure(f"--ca {args.ca}: {e}") from None
    tls.minimum_version = ssl.TLSVersion.TLSv1_2
    extra = {"local_addr": (args.source, 0)} if args.source else {}
    ws = await websockets.connect(
        args.url,
        ssl=tls,
        server_hostname=args.server_name or url.hostname,
        subprotocols=["sip"],
        open_timeout=args.timeout,
        **extra,
    )
    if ws.subprotocol != "sip":
        await ws.close()
        raise Failure(f"the server chose subprotocol {ws.subprotocol!r}, not sip")
    return ws


async def run(args):
    ws = await connect(args)
    try:
        phone = Phone(args, ws)
        await phone.register()
        await phone.answer_call()
    finally:
        await ws.close()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--url", required=True, help="wss://HOST:PORT of the gateway")
    p.add_argument("--ca", required=True, help="PEM file of the CA (or self-signed cert) to trust")
    p.add_argument("--user", required=True)
    p.add_argument("--password", required=True)
    p.add_argument("--realm", required=True, help="digest realm, also the registrar's domain")
    p.add_argument(
        "--pbx-timeout",
        type=float,
        default=20.0,
        help="seconds to wait for the INVITE, then for the ACK, then for the BYE (default 20)",
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=10.0,
        help="seconds for the connection and for registering (default 10)",
    )
    p.add_argument("--expires", type=int, default=600, help="registration lifetime (default 600)")
    p.add_argument(
        "--server-name",
        help="name to verify the certificate for (default: the URL's host; the lab's cert "
        "names sipwarden.lab, localhost and 127.0.0.1)",
    )
    p.add_argument(
        "--source",
        help="local IP to connect from (default: the kernel's choice, 127.0.0.1 on loopback; the "
        "lab's phones use 127.0.0.2 or 127.0.0.1, its PBX 127.0.0.10)",
    )
    p.add_argument("-v", "--verbose", action="store_true", help="print SIP traffic to stderr")
    args = p.parse_args()
    try:
        asyncio.run(run(args))
    except Failure as e:
        fail(str(e))
    except KeyboardInterrupt:
        fail("interrupted")
    except Exception as e:  # connection refused, TLS failures, refused upgrades, ...
        fail(f"{type(e).__name__}: {e}")
    sys.exit(0)


if __name__ == "__main__":
    main()
