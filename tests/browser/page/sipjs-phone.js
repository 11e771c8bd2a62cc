// SIP.js (its simple API: UserAgent, Registerer, Inviter) as a browser phone: registers, calls,
// hangs up, unregisters; then tries a wrong password. Library defaults everywhere but the
// account, the server, the media constraints and the ICE gathering bound.
import * as common from "./common.js";
import * as SIP from "sip.js";

const { Report, until, delay, lastRegisterCallId, registerDetail, requests } = common;
const { UserAgent, Registerer, RegistererState, Inviter, SessionState } = SIP;

function newUA(o, password) {
  return new UserAgent({
    uri: UserAgent.makeURI(`sip:${o.user}@${o.realm}`),
    transportOptions: { server: o.url, connectionTimeout: Math.ceil(o.timeoutMs / 1000) },
    authorizationUsername: o.user,
    authorizationPassword: password,
    logLevel: o.debug ? "debug" : "warn",
    sessionDescriptionHandlerFactoryOptions: {
      peerConnectionConfiguration: { iceServers: [] },
      // Host candidates only (no STUN, loopback lab): gathering needs no more.
      iceGatheringTimeout: 2000,
    },
  });
}

/** Sends a REGISTER (or an unregistering one) and waits for its final answer. */
function registerOnce(registerer, unregister, ms) {
  return common.within(
    new Promise((resolve, reject) => {
      const requestDelegate = {
        onAccept: (r) => resolve({ ok: true, status: r.message.statusCode, reason: r.message.reasonPhrase }),
        onReject: (r) => resolve({ ok: false, status: r.message.statusCode, reason: r.message.reasonPhrase }),
      };
      const p = unregister ? registerer.unregister({ requestDelegate }) : registerer.register({ requestDelegate });
      p.catch(reject);
    }),
    ms,
    unregister ? "the unregistration" : "the registration",
  );
}

async function stop(ua, ms) {
  try {
    await common.within(ua.stop(), ms, "the user agent to stop");
  } catch (_) {
    // A slow close is not what these steps check.
  }
}

async function run(o) {
  const report = new Report("SIP.js", SIP.version);
  const T = o.timeoutMs;

  // 1. Register with the right password.
  const ua = newUA(o, o.password);
  let registered = false;
  let registerer;
  try {
    await common.within(ua.start(), T, "the WebSocket to open");
    registerer = new Registerer(ua, { expires: 600 });
    const r = await registerOnce(registerer, false, T);
    registered =
      r.ok && registerer.state === RegistererState.Registered && common.acceptedWithCredentials(lastRegisterCallId());
    await report.step(
      "register",
      registered,
      `${registerDetail(lastRegisterCallId())}; library: ${r.ok ? "accepted" : "rejected"} ${r.status} ${r.reason}, state ${registerer.state}`,
    );
  } catch (e) {
    await report.step("register", false, `${registerDetail(lastRegisterCallId())}; ${e.message}`);
  }

  // 2. The call: 407, the INVITE again with Proxy-Authorization, the PBX answers.
  if (registered) {
    const states = [];
    let rejected = null;
    const inviter = new Inviter(ua, UserAgent.makeURI(`sip:${o.number}@${o.realm}`), {
      sessionDescriptionHandlerOptions: { constraints: { audio: true, video: false } },
    });
    inviter.stateChange.addListener((s) => states.push(s));
    try {
      await common.within(
        inviter.invite({ requestDelegate: { onReject: (r) => (rejected = r.message) } }),
        T,
        "the INVITE to be sent",
      );
    } catch (e) {
      states.push(`invite() failed: ${e.message}`);
    }
    let outcome;
    try {
      outcome = await until(
        () => states.find((s) => s === SessionState.Established || s === SessionState.Terminated || String(s).startsWith("invite()")),
        T,
        "the call to be answered",
      );
    } catch (e) {
      outcome = e.message;
    }
    const cid = requests("INVITE").at(-1)?.callId;
    await common.reportInvite(report, cid);
    const answered = outcome === SessionState.Established;
    const ok200 = cid && common.responses("INVITE", cid).find((r) => r.status === 200);
    await report.step(
      "answered",
      answered,
      `library: ${states.join(" -> ")}${rejected ? ` (rejected ${rejected.statusCode} ${rejected.reasonPhrase})` : ""}; ` +
        (ok200 ? `200 OK with ${common.sdpSummary(ok200.body)}; ACK ${requests("ACK", cid).length ? "sent" : "not sent"}` : "no 200 OK"),
    );
    if (answered) {
      await delay(o.talkMs);
      try {
        await inviter.bye();
      } catch (e) {
        states.push(`bye() failed: ${e.message}`);
      }
    } else if (inviter.state === SessionState.Establishing) {
      try {
        await inviter.cancel();
      } catch (_) {
        // Already ending.
      }
    }
    if (ok200) await common.reportBye(report, cid, T);
    else await report.step("hangup", false, "no call to hang up");
  } else {
    for (const s of ["invite_challenged", "invite_authenticated", "answered", "hangup"]) {
      await report.step(s, false, "not registered");
    }
  }

  // 3. Unregister, then close the WebSocket.
  if (registered) {
    try {
      const r = await registerOnce(registerer, true, T);
      await report.step(
        "unregister",
        r.ok && registerer.state === RegistererState.Unregistered,
        `${registerDetail(lastRegisterCallId())}; library: ${r.ok ? "accepted" : "rejected"} ${r.status} ${r.reason}, state ${registerer.state}`,
      );
    } catch (e) {
      await report.step("unregister", false, `${registerDetail(lastRegisterCallId())}; ${e.message}`);
    }
  } else {
    await report.step("unregister", false, "not registered");
  }
  await stop(ua, T);

  // 4. A wrong password: the gateway must refuse the registration.
  const wrong = newUA(o, o.wrongPassword);
  const before = requests("REGISTER").length;
  try {
    await common.within(wrong.start(), T, "the WebSocket to open");
    const reg = new Registerer(wrong, { expires: 600 });
    const r = await registerOnce(reg, false, T);
    const cid = requests("REGISTER").slice(before).at(-1)?.callId;
    await report.step(
      "wrong_password",
      !r.ok && reg.state !== RegistererState.Registered && common.refusedWithCredentials(cid),
      `${registerDetail(cid)}; library: ${r.ok ? "accepted" : "rejected"} ${r.status} ${r.reason}, state ${reg.state}`,
    );
  } catch (e) {
    await report.step("wrong_password", false, e.message);
  }
  await stop(wrong, T);
  return report.steps;
}

window.phone = { library: "SIP.js", version: SIP.version, run, traceText: common.traceText };
