// What both browser phones share: the SIP trace of the page (every WebSocket frame, as the
// library sent or got it), its parsing, bounded waits, and the steps reported to the driver.
//
// Imported first by each phone's bundle, so that the traced WebSocket is in place before the
// library opens one.

export const trace = [];
const started = performance.now();

const NativeWebSocket = window.WebSocket;
class TracedWebSocket extends NativeWebSocket {
  constructor(url, protocols) {
    super(url, protocols);
    this.addEventListener("message", (e) => {
      if (typeof e.data === "string") record("in", e.data);
    });
  }
  send(data) {
    if (typeof data === "string") record("out", data);
    super.send(data);
  }
}
window.WebSocket = TracedWebSocket;

function record(dir, text) {
  if (!text.trim()) return; // keep-alive CRLFs
  trace.push({ dir, ms: Math.round(performance.now() - started), msg: parse(text), text });
}

export function traceText() {
  return trace.map((t) => `--- ${t.dir} +${t.ms} ms\n${t.text}`).join("\n");
}

const COMPACT = { v: "via", f: "from", t: "to", i: "call-id", m: "contact", l: "content-length", c: "content-type", k: "supported" };

/** One SIP message: start line, headers (lowercase names, compact forms expanded), body. */
export function parse(text) {
  const cut = text.indexOf("\r\n\r\n");
  const head = cut < 0 ? text : text.slice(0, cut);
  const body = cut < 0 ? "" : text.slice(cut + 4);
  const lines = head.split("\r\n");
  const start = lines[0] || "";
  const headers = {};
  let last = null;
  for (const line of lines.slice(1)) {
    if (/^[ \t]/.test(line) && last) {
      const vals = headers[last];
      vals[vals.length - 1] += " " + line.trim();
      continue;
    }
    const i = line.indexOf(":");
    if (i < 0) continue;
    let name = line.slice(0, i).trim().toLowerCase();
    name = COMPACT[name] || name;
    (headers[name] = headers[name] || []).push(line.slice(i + 1).trim());
    last = name;
  }
  const isResponse = start.startsWith("SIP/2.0 ");
  const [cseqNum, cseqMethod] = (headers.cseq?.[0] || "").split(/\s+/);
  return {
    start,
    isResponse,
    status: isResponse ? Number(start.split(" ")[1]) : null,
    method: isResponse ? null : start.split(" ")[0],
    cseq: Number(cseqNum),
    cseqMethod: (cseqMethod || "").toUpperCase(),
    callId: headers["call-id"]?.[0] || "",
    headers,
    body,
  };
}

export const header = (m, name) => m.headers[name]?.[0];
export const sent = () => trace.filter((t) => t.dir === "out").map((t) => t.msg);
export const received = () => trace.filter((t) => t.dir === "in").map((t) => t.msg);

/** Requests we sent with this method (and Call-ID when given). */
export const requests = (method, callId) =>
  sent().filter((m) => !m.isResponse && m.method === method && (!callId || m.callId === callId));

/** Responses we got to requests with this method (and Call-ID when given). */
export const responses = (method, callId) =>
  received().filter((m) => m.isResponse && m.cseqMethod === method && (!callId || m.callId === callId));

/** The User-Agent header of the first request the library sent. */
export function userAgent() {
  const req = sent().find((m) => !m.isResponse && header(m, "user-agent"));
  return req ? header(req, "user-agent") : null;
}

/** The algorithms of the digest challenges of a 401 or 407, in order. */
export function challengeAlgorithms(rsp) {
  const values = [...(rsp.headers["www-authenticate"] || []), ...(rsp.headers["proxy-authenticate"] || [])];
  return values.map((v) => (/algorithm\s*=\s*"?([A-Za-z0-9-]+)/i.exec(v) || [null, "MD5 (implicit)"])[1]);
}

/** The algorithm of an Authorization or Proxy-Authorization we sent. */
export function answerAlgorithm(req) {
  const v = header(req, "authorization") || header(req, "proxy-authorization");
  if (!v) return null;
  return (/algorithm\s*=\s*"?([A-Za-z0-9-]+)/i.exec(v) || [null, "MD5 (implicit)"])[1];
}

/** The SDP's audio m= line, and whether it carries a DTLS fingerprint and SDES keys. */
export function sdpSummary(body) {
  if (!body || !body.trim()) return "no SDP";
  const m = (/^m=audio [^\r\n]*/m.exec(body) || ["no m=audio"])[0];
  const fp = /^a=fingerprint:/m.test(body) ? ", fingerprint" : "";
  const crypto = /^a=crypto:/m.test(body) ? ", crypto" : "";
  const ice = /^a=ice-ufrag:/m.test(body) ? ", ice" : "";
  return `${m}${fp}${crypto}${ice}`;
}

export function delay(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

/** `promise`, or a rejection naming `what` after `ms`. */
export function within(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Polls `test` (every 50 ms) until it returns a truthy value, which is returned. */
export async function until(test, ms, what) {
  const deadline = performance.now() + ms;
  for (;;) {
    const v = test();
    if (v) return v;
    if (performance.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await delay(50);
  }
}

/** The steps of one library's run, each reported to the driver as it happens. */
export class Report {
  constructor(library, version) {
    this.library = library;
    this.version = version;
    this.steps = [];
  }
  async step(step, ok, detail) {
    const line = {
      library: this.library,
      version: this.version,
      user_agent: userAgent(),
      step,
      ok: Boolean(ok),
      detail: String(detail),
      ms: Math.round(performance.now() - started),
    };
    this.steps.push(line);
    if (window.sipwardenStep) await window.sipwardenStep(line);
    return ok;
  }
}

/**
 * The checks both libraries' calls share, read from the trace: the first INVITE got a 407, an
 * INVITE with Proxy-Authorization followed and got through (a provisional or 2xx answer, not
 * another challenge), and the 200's SDP.
 */
export async function reportInvite(report, callId) {
  const invites = requests("INVITE", callId);
  const rsps = responses("INVITE", callId);
  const first = invites[0];
  if (!first) {
    await report.step("invite_challenged", false, "no INVITE was sent");
    await report.step("invite_authenticated", false, "no INVITE was sent");
    return false;
  }
  const challenge = rsps.find((r) => r.cseq === first.cseq && r.status >= 200);
  const ok407 = challenge && challenge.status === 407;
  await report.step(
    "invite_challenged",
    ok407,
    challenge
      ? `INVITE (${sdpSummary(first.body)}) answered ${challenge.status}` +
          (challenge.status === 401 || challenge.status === 407
            ? `, challenges ${challengeAlgorithms(challenge).join(", ")}`
            : "")
      : "no final response to the first INVITE",
  );
  const authed = invites.find((m) => header(m, "proxy-authorization"));
  if (!authed) {
    await report.step("invite_authenticated", false, "no INVITE with Proxy-Authorization was sent");
    return false;
  }
  const answers = rsps.filter((r) => r.cseq === authed.cseq).map((r) => r.status);
  const through = answers.some((s) => s < 300 && s !== 100) && !answers.some((s) => s === 401 || s === 407);
  await report.step(
    "invite_authenticated",
    through,
    `INVITE with Proxy-Authorization (${answerAlgorithm(authed)}) answered ${answers.join(", ") || "nothing"}`,
  );
  return through;
}

/** Waits for the 200 to our BYE in this call; the step says what came. */
export async function reportBye(report, callId, ms) {
  try {
    const ok = await until(() => responses("BYE", callId).find((r) => r.status >= 200), ms, "the BYE's final response");
    const byes = requests("BYE", callId);
    const auth = byes.some((b) => header(b, "proxy-authorization") || header(b, "authorization"));
    const all = responses("BYE", callId)
      .filter((r) => r.status >= 200)
      .map((r) => r.status);
    return report.step(
      "hangup",
      ok.status === 200 || all.includes(200),
      `${byes.length} BYE sent${auth ? " (one with credentials)" : ""}, answered ${all.join(", ")}`,
    );
  } catch (e) {
    const byes = requests("BYE", callId);
    return report.step("hangup", false, `${byes.length} BYE sent; ${e.message}`);
  }
}

/** The REGISTER exchange of one registration (by Call-ID) as text, for the step's detail. */
export function registerDetail(callId) {
  const parts = [];
  for (const t of trace) {
    const m = t.msg;
    if (m.callId !== callId || (m.isResponse ? m.cseqMethod : m.method) !== "REGISTER") continue;
    if (m.isResponse) {
      parts.push(
        m.status === 401 || m.status === 407 ? `${m.status} [${challengeAlgorithms(m).join(", ")}]` : `${m.status}`,
      );
    } else {
      const alg = answerAlgorithm(m);
      const expires = header(m, "expires") ?? (/expires=(\d+)/.exec(header(m, "contact") || "") || [])[1];
      parts.push(`REGISTER${alg ? ` with ${alg}` : ""}${expires !== undefined ? ` expires=${expires}` : ""}`);
    }
  }
  return parts.length ? parts.join(" -> ") : "no REGISTER sent";
}

/** The Call-ID of the last REGISTER we sent. */
export function lastRegisterCallId() {
  const regs = requests("REGISTER");
  return regs.length ? regs[regs.length - 1].callId : null;
}

/**
 * Whether the gateway refused a registration whose credentials were sent: a REGISTER with
 * Authorization in this Call-ID got a final 401, 403 or 407, and none got a 2xx. A library
 * that gave up before answering the challenge (an algorithm it does not know) sent no
 * credentials, which proves nothing about the gateway.
 */
export function refusedWithCredentials(callId) {
  const authed = requests("REGISTER", callId).filter((m) => header(m, "authorization"));
  const finals = responses("REGISTER", callId).filter((r) => r.status >= 200);
  if (!authed.length) return false;
  if (finals.some((r) => r.status < 300)) return false;
  const last = authed[authed.length - 1];
  const answer = finals.find((r) => r.cseq === last.cseq);
  return Boolean(answer) && [401, 403, 407].includes(answer.status);
}

/** Whether a REGISTER with Authorization in this Call-ID got a 200 (after the 401 it answers). */
export function acceptedWithCredentials(callId) {
  const authed = requests("REGISTER", callId).filter((m) => header(m, "authorization"));
  const rsps = responses("REGISTER", callId);
  const challenged = rsps.some((r) => r.status === 401 || r.status === 407);
  return challenged && authed.some((a) => rsps.some((r) => r.cseq === a.cseq && r.status === 200));
}
