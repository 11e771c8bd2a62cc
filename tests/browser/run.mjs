#!/usr/bin/env node
// Runs JsSIP, then SIP.js, in Debian's headless Chromium against sipwarden's WSS listener (the
// lab of LAB.md), and prints one JSON line per step on stdout:
//   {"library","version","user_agent","step","ok","detail","ms"}
// Steps, per library: register, invite_challenged, invite_authenticated, answered, hangup,
// unregister, wrong_password. Exit status 0 when every step of every library is ok, 1 when one
// is not, 2 when the run itself failed (no browser, no bundle, the deadline passed).
//
//   npm ci --prefix tests/browser
//   node tests/browser/run.mjs --cert examples/lab/tls/cert.pem [--out DIR]
//
// Chromium starts once (never downloaded: /usr/bin/chromium, Debian's package), with a fresh
// profile, fake media devices and the lab's self-signed certificate trusted by its public key
// (an SPKI pin, not --ignore-certificate-errors). The pages come from a static server on
// 127.0.0.1 (an ephemeral port), the libraries bundled by esbuild from node_modules.

import { createServer } from "node:http";
import { X509Certificate, createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const here = dirname(fileURLToPath(import.meta.url));

const OPTIONS = {
  url: { type: "string", default: "wss://127.0.0.1:8443" },
  cert: { type: "string", default: "examples/lab/tls/cert.pem" },
  realm: { type: "string", default: "sipwarden.lab" },
  user: { type: "string", default: "1002" },
  // LAB.md's published lab password of 1002.
  password: { type: "string", default: "t7Vq!2mZ#8rLw@4xPn6s" },
  "wrong-password": { type: "string", default: "not-the-password-1002" },
  number: { type: "string", default: "5551234" },
  libs: { type: "string", default: "jssip,sipjs" },
  // Bound of each wait inside a scenario, seconds.
  timeout: { type: "string", default: "15" },
  // Of the whole run, seconds: past it the run stops, whatever it is waiting for.
  deadline: { type: "string", default: "150" },
  // How long a call stays up before the phone hangs up, milliseconds.
  talk: { type: "string", default: "1000" },
  chromium: { type: "string", default: "/usr/bin/chromium" },
  // Where to write each library's SIP trace and console log (none when not given).
  out: { type: "string" },
  debug: { type: "boolean", default: false },
  help: { type: "boolean", short: "h", default: false },
};
const { values: args } = parseArgs({ options: OPTIONS });
if (args.help) {
  const head = readFileSync(fileURLToPath(import.meta.url), "utf8").split("\n").slice(1, 15);
  console.log(head.map((l) => l.replace(/^\/\/ ?/, "")).join("\n"));
  console.log("Options (defaults: the lab of LAB.md): " + Object.keys(OPTIONS).map((o) => `--${o}`).join(" "));
  process.exit(0);
}

const LIBS = {
  jssip: { page: "jssip.html", bundle: "jssip-phone.js", pkg: "jssip", name: "JsSIP" },
  sipjs: { page: "sipjs.html", bundle: "sipjs-phone.js", pkg: "sip.js", name: "SIP.js" },
};

// Set when the deadline passed: nothing more is printed, the exit status is 2.
let stopping = false;
// A reader that went away (`| head`) must not end the run before Chromium and its profile
// are cleaned up.
process.stdout.on("error", () => {});

function emit(line) {
  if (!stopping) process.stdout.write(JSON.stringify(line) + "\n");
}

function driverFailure(step, detail) {
  emit({ library: "driver", version: null, user_agent: null, step, ok: false, detail: String(detail) });
}

// Undone in reverse order, once, whoever asks first (the end of the run or the deadline).
const cleanups = [];
let cleaning = null;
function cleanup() {
  cleaning ??= (async () => {
    while (cleanups.length) {
      try {
        await cleanups.pop()();
      } catch (_) {
        // Best effort: the process is ending.
      }
    }
  })();
  return cleaning;
}

// The run's deadline: whatever hangs, the driver exits by itself.
const deadlineMs = Number(args.deadline) * 1000;
const watchdog = setTimeout(async () => {
  driverFailure("deadline", `the run did not finish within ${args.deadline} s`);
  stopping = true;
  const hard = setTimeout(() => process.exit(2), 5000);
  hard.unref();
  await cleanup();
  process.exit(2);
}, deadlineMs);
watchdog.unref();

function pkgVersion(name) {
  return JSON.parse(readFileSync(join(here, "node_modules", name, "package.json"), "utf8")).version;
}

/** base64(SHA-256(SubjectPublicKeyInfo)) of a PEM certificate: Chromium's SPKI pin. */
function spkiPin(pemFile) {
  const cert = new X509Certificate(readFileSync(pemFile));
  const der = cert.publicKey.export({ type: "spki", format: "der" });
  return createHash("sha256").update(der).digest("base64");
}

async function bundles() {
  const esbuild = await import("esbuild");
  const result = await esbuild.build({
    entryPoints: Object.values(LIBS).map((l) => join(here, "page", l.bundle)),
    bundle: true,
    format: "iife",
    platform: "browser",
    target: "chrome100",
    outdir: "/bundles",
    write: false,
    logLevel: "silent",
  });
  const files = new Map();
  for (const f of result.outputFiles) files.set(`/${f.path.split("/").pop()}`, f.contents);
  return files;
}

function serve(files) {
  const server = createServer((req, res) => {
    const path = new URL(req.url, "http://127.0.0.1").pathname;
    const body = files.get(path);
    if (!body) {
      res.writeHead(404).end();
      return;
    }
    const type = path.endsWith(".html") ? "text/html; charset=utf-8" : "text/javascript; charset=utf-8";
    res.writeHead(200, { "content-type": type, "cache-control": "no-store" }).end(body);
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve(server));
  });
}

async function main() {
  const libs = args.libs.split(",").map((s) => s.trim()).filter(Boolean);
  for (const l of libs) if (!LIBS[l]) throw new Error(`unknown library ${l} (known: ${Object.keys(LIBS).join(", ")})`);
  let chromium;
  try {
    ({ chromium } = await import("playwright-core"));
  } catch (e) {
    driverFailure("setup", `node_modules missing (${e.message}): run npm ci --prefix tests/browser`);
    return 2;
  }
  let pin;
  try {
    pin = spkiPin(args.cert);
  } catch (e) {
    driverFailure("setup", `cannot read the gateway's certificate ${args.cert}: ${e.message}`);
    return 2;
  }

  const files = await bundles();
  for (const l of Object.values(LIBS)) files.set(`/${l.page}`, readFileSync(join(here, "page", l.page)));
  const server = await serve(files);
  cleanups.push(() => new Promise((r) => server.close(r)));
  const origin = `http://127.0.0.1:${server.address().port}`;

  const profile = mkdtempSync(join(tmpdir(), "sipwarden-chromium-"));
  cleanups.push(() => rmSync(profile, { recursive: true, force: true }));
  // launchPersistentContext passes the fresh profile as --user-data-dir, which Chromium needs
  // for --ignore-certificate-errors-spki-list to take effect.
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: args.chromium,
    headless: true,
    timeout: 30000,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--use-fake-ui-for-media-stream",
      "--use-fake-device-for-media-stream",
      `--ignore-certificate-errors-spki-list=${pin}`,
    ],
  });
  cleanups.push(() => context.close());
  const browserVersion = context.browser()?.version() ?? "";

  if (args.out) mkdirSync(args.out, { recursive: true });
  const opts = {
    url: args.url,
    realm: args.realm,
    user: args.user,
    password: args.password,
    wrongPassword: args["wrong-password"],
    number: args.number,
    timeoutMs: Number(args.timeout) * 1000,
    talkMs: Number(args.talk),
    debug: args.debug || Boolean(args.out),
  };
  // Each scenario has a bound of its own: its waits, at most 10 of them, plus the talk.
  const scenarioMs = 10 * opts.timeoutMs + opts.talkMs;

  let allOk = true;
  for (const key of libs) {
    const lib = LIBS[key];
    const version = pkgVersion(lib.pkg);
    const page = await context.newPage();
    const log = [];
    page.on("console", (m) => log.push(`[${m.type()}] ${m.text()}`));
    page.on("pageerror", (e) => log.push(`[pageerror] ${e.message}`));
    let steps = 0;
    await page.exposeFunction("sipwardenStep", (line) => {
      steps += 1;
      if (!line.ok) allOk = false;
      // The npm package's version: SIP.js 0.21.2 calls itself 0.21.1 (lib/version.js).
      emit({ ...line, version, library_says: line.version, browser: browserVersion });
    });
    try {
      await page.goto(`${origin}/${lib.page}`, { timeout: opts.timeoutMs });
      await page.waitForFunction(() => window.phone, null, { timeout: opts.timeoutMs });
      let timer;
      const bound = new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`the ${lib.name} scenario did not finish within ${scenarioMs} ms`)), scenarioMs);
      });
      await Promise.race([page.evaluate((o) => window.phone.run(o), opts), bound]).finally(() => clearTimeout(timer));
    } catch (e) {
      allOk = false;
      emit({ library: lib.name, version, user_agent: null, step: "scenario", ok: false, detail: e.message.split("\n")[0] });
    }
    if (steps === 0) allOk = false;
    if (args.out) {
      let sip = "";
      try {
        sip = await page.evaluate(() => window.phone.traceText());
      } catch (e) {
        sip = `(no trace: ${e.message})`;
      }
      writeFileSync(join(args.out, `${key}-sip.log`), sip);
      writeFileSync(join(args.out, `${key}-console.log`), log.join("\n") + "\n");
    }
    await page.close();
  }
  return allOk ? 0 : 1;
}

let code;
try {
  code = await main();
} catch (e) {
  driverFailure("run", e.stack || e.message);
  code = 2;
}
await cleanup();
process.exit(stopping ? 2 : code);
