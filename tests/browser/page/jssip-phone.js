// JsSIP as a browser phone: registers, calls, hangs up, unregisters; then tries a wrong
// password. Library defaults everywhere but the account, the server and the media constraints.
import * as common from "./common.js";
import JsSIP from "jssip";

const { Report, until, delay, lastRegisterCallId, registerDetail, requests } = common;

function newUA(o, password) {
  const ua = new JsSIP.UA({
    sockets: [new JsSIP.WebSocketInterface(o.url)],
    uri: `sip:${o.user}@${o.realm}`,
    password,
    // The driver's timeouts bound every wait; no reconnection storms behind their back.
    connection_recovery_min_interval: 2,
    connection_recovery_max_interval: 30,
  });
  const events = [];
  for (const name of ["connected", "disconnected", "registered", "unregistered", "registrationFailed"]) {
    ua.on(name, (e) => events.push({ name, e }));
  }
  return { ua, events };
}

/** The first of `names` that the UA emitted after `from` (an index into its events). */
function waitEvent(phone, names, from, ms, what) {
  return until(() => phone.events.slice(from).find((x) => names.includes(x.name)), ms, what);
}

async function stop(phone, ms) {
  const from = phone.events.length;
  phone.ua.stop();
  try {
    await waitEvent(phone, ["disconnected"], from, ms, "the WebSocket to close");
  } catch (_) {
    // Reported by the steps that matter; a slow close is not one of them.
  }
}

async function run(o) {
  if (o.debug) JsSIP.debug.enable("JsSIP:*");
  const report = new Report("JsSIP", JsSIP.version);
  const T = o.timeoutMs;

  // 1. Register with the right password (the library registers on connecting).
  const phone = newUA(o, o.password);
  phone.ua.start();
  let registered = false;
  try {
    const ev = await waitEvent(phone, ["registered", "registrationFailed"], 0, T, "the registration");
    registered = ev.name === "registered" && common.acceptedWithCredentials(lastRegisterCallId());
    const status = ev.e.response ? `${ev.e.response.status_code} ${ev.e.response.reason_phrase}` : "no response";
    await report.step(
      "register",
      registered,
      `${registerDetail(lastRegisterCallId())}; library: ${ev.name}${ev.name === "registrationFailed" ? ` (${ev.e.cause}, ${status})` : ""}`,
    );
  } catch (e) {
    await report.step("register", false, `${registerDetail(lastRegisterCallId())}; ${e.message}`);
  }

  // 2. The call: 407, the INVITE again with Proxy-Authorization, the PBX answers.
  if (registered) {
    const sessionEvents = [];
    const on = (name) => (e) => sessionEvents.push({ name, e });
    let session;
    try {
      session = phone.ua.call(`sip:${o.number}@${o.realm}`, {
        mediaConstraints: { audio: true, video: false },
        pcConfig: { iceServers: [] },
        eventHandlers: {
          progress: on("progress"),
          accepted: on("accepted"),
          confirmed: on("confirmed"),
          ended: on("ended"),
          failed: on("failed"),
        },
      });
    } catch (e) {
      await report.step("invite_challenged", false, `ua.call threw: ${e.message}`);
    }
    if (session) {
      const first = (names) => sessionEvents.find((x) => names.includes(x.name));
      let outcome;
      try {
        outcome = await until(() => first(["confirmed", "failed", "ended"]), T, "the call to be answered");
      } catch (e) {
        outcome = { name: "timeout", e: { cause: e.message } };
      }
      const cid = requests("INVITE").at(-1)?.callId;
      await common.reportInvite(report, cid);
      const answered = outcome.name === "confirmed";
      const ok200 = common.responses("INVITE", cid).find((r) => r.status === 200);
      await report.step(
        "answered",
        answered,
        `library: ${outcome.name}${outcome.e?.cause ? ` (${outcome.e.cause})` : ""}; ` +
          (ok200 ? `200 OK with ${common.sdpSummary(ok200.body)}; ACK ${requests("ACK", cid).length ? "sent" : "not sent"}` : "no 200 OK"),
      );
      if (answered) {
        await delay(o.talkMs);
        session.terminate();
      } else if (!session.isEnded()) {
        try {
          session.terminate();
        } catch (_) {
          // Already ending.
        }
      }
      if (ok200) await common.reportBye(report, cid, T);
      else await report.step("hangup", false, "no call to hang up");
    }
  } else {
    for (const s of ["invite_challenged", "invite_authenticated", "answered", "hangup"]) {
      await report.step(s, false, "not registered");
    }
  }

  // 3. Unregister, then close the WebSocket.
  if (registered) {
    const from = phone.events.length;
    phone.ua.unregister();
    try {
      const ev = await waitEvent(phone, ["unregistered", "registrationFailed"], from, T, "the unregistration");
      const cause = ev.e?.cause ? ` (${ev.e.cause})` : "";
      await report.step("unregister", ev.name === "unregistered" && !ev.e?.cause, `${registerDetail(lastRegisterCallId())}; library: ${ev.name}${cause}`);
    } catch (e) {
      await report.step("unregister", false, `${registerDetail(lastRegisterCallId())}; ${e.message}`);
    }
  } else {
    await report.step("unregister", false, "not registered");
  }
  await stop(phone, T);

  // 4. A wrong password: the gateway must refuse the registration.
  const wrong = newUA(o, o.wrongPassword);
  const before = requests("REGISTER").length;
  wrong.ua.start();
  try {
    const ev = await waitEvent(wrong, ["registered", "registrationFailed"], 0, T, "the refusal");
    const cid = requests("REGISTER").slice(before).at(-1)?.callId;
    const status = ev.e.response ? `${ev.e.response.status_code} ${ev.e.response.reason_phrase}` : "no response";
    await report.step(
      "wrong_password",
      ev.name === "registrationFailed" && common.refusedWithCredentials(cid),
      `${registerDetail(cid)}; library: ${ev.name}${ev.e.cause ? ` (${ev.e.cause}, ${status})` : ""}`,
    );
  } catch (e) {
    await report.step("wrong_password", false, e.message);
  }
  await stop(wrong, T);
  return report.steps;
}

window.phone = { library: "JsSIP", version: JsSIP.version, run, traceText: common.traceText };
