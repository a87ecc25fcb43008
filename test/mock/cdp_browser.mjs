#!/usr/bin/env node
// A headless Chromium driven over the Chrome DevTools Protocol, for TAP tests
// that need a browser to act like a customer (click links and buttons,
// follow redirects, reload) rather than only render a file.
//
// Why a client of our own over --remote-debugging-pipe, not puppeteer-core:
// the pipe needs no npm package (nothing to pin, download or keep in step
// with Debian's Chromium, whose CDP is always the one its own binary speaks),
// no TCP port, and nothing but the chromium and nodejs packages test/deps.sh
// already installs; the few commands the tests need fit in this file.
// Chromium reads commands on its fd 3 and writes answers and events on fd 4,
// each a JSON message followed by a NUL byte.
//
// Usage: node cdp_browser.mjs --profile DIR --log FILE [--chromium PATH]
// It reads one JSON command per line on stdin and writes one JSON answer per
// line on stdout: {"ok": true, ...} or {"ok": false, "error": "..."}.
//   {"cmd": "goto", "url": U}        navigate, wait for the load
//   {"cmd": "click", "text": T}      a real mouse click (pointer events at the
//                                    centre of the visible <a> or <button>
//                                    whose text is T), then wait for the
//                                    navigation it starts to load
//                                    (timeout_ms: how long to wait, 90 s unless given)
//   {"cmd": "click", "label": L}     the same for the <a> or <button> whose
//                                    aria-label is L (buttons sharing a text)
//   {"cmd": "file", "selector": S, "path": P}  give the file input S the file P
//   {"cmd": "viewport", "width": W, "height": H, "mobile": B}  emulate a screen
//   {"cmd": "reload"}                reload, wait for the load
//   {"cmd": "page"}                  the current URL, title, innerText, HTML
//   {"cmd": "screenshot", "path": P} a full-page PNG written to P
//   {"cmd": "eval", "expression": E} Runtime.evaluate (returnByValue)
//   {"cmd": "csp"}                   the CSP violations seen so far
//   {"cmd": "quit"}
// Every navigation answer carries "chain": the main frame's document
// requests since the command, in order, each {url, method, status} (a
// redirect's status is the 3xx it answered), and "url", where it ended.
import { spawn } from "node:child_process";
import fs from "node:fs";
import readline from "node:readline";

const args = {};
for (let i = 2; i < process.argv.length; i += 2) args[process.argv[i].replace(/^--/, "")] = process.argv[i + 1];
if (!args.profile || !args.log) {
    process.stderr.write("usage: cdp_browser.mjs --profile DIR --log FILE [--chromium PATH]\n");
    process.exit(2);
}
const NAV_TIMEOUT_MS = 90_000;
const logFd = fs.openSync(args.log, "a");
const log = (s) => fs.writeSync(logFd, `[cdp ${new Date().toISOString()}] ${s}\n`);

const chrome = spawn(args.chromium || "chromium", [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic", "--no-first-run",
    "--no-default-browser-check", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--disable-extensions", "--no-proxy-server", "--hide-scrollbars", "--mute-audio",
    "--remote-debugging-pipe", `--user-data-dir=${args.profile}`, "--window-size=1000,1400", "about:blank",
], { stdio: ["ignore", logFd, logFd, "pipe", "pipe"] });
const toChrome = chrome.stdio[3];
const fromChrome = chrome.stdio[4];
chrome.on("exit", (code, signal) => {
    log(`chromium exited: ${code ?? signal}`);
    for (const { reject } of pending.values()) reject(new Error(`chromium exited (${code ?? signal})`));
    pending.clear();
    if (!quitting) {
        answer({ ok: false, error: `chromium exited (${code ?? signal})` });
        process.exit(1);
    }
});

let nextId = 1;
let quitting = false;
const pending = new Map();      // id -> {resolve, reject, method}
const listeners = new Set();    // (message) => void, for events
let buffer = Buffer.alloc(0);
fromChrome.on("data", (chunk) => {
    buffer = Buffer.concat([buffer, chunk]);
    let nul;
    while ((nul = buffer.indexOf(0)) >= 0) {
        const msg = JSON.parse(buffer.subarray(0, nul).toString("utf8"));
        buffer = buffer.subarray(nul + 1);
        if (msg.id !== undefined && pending.has(msg.id)) {
            const { resolve, reject, method } = pending.get(msg.id);
            pending.delete(msg.id);
            if (msg.error) reject(new Error(`${method}: ${msg.error.message}`));
            else resolve(msg.result);
        } else {
            for (const l of listeners) l(msg);
        }
    }
});

function send(method, params = {}, sessionId = session) {
    const id = nextId++;
    const msg = { id, method, params };
    if (sessionId) msg.sessionId = sessionId;
    return new Promise((resolve, reject) => {
        pending.set(id, { resolve, reject, method });
        toChrome.write(JSON.stringify(msg) + "\0");
    });
}

// The next event for which pred(message) holds, or an error after ms.
function waitEvent(pred, ms, what) {
    return new Promise((resolve, reject) => {
        const timer = setTimeout(() => { listeners.delete(l); reject(new Error(`timed out waiting for ${what}`)); }, ms);
        const l = (m) => { if (pred(m)) { clearTimeout(timer); listeners.delete(l); resolve(m); } };
        listeners.add(l);
    });
}

let session = null;
let mainFrame = null;
let chain = [];                 // document requests of the main frame
const violations = [];          // CSP violations, from the console and from securitypolicyviolation
listeners.add((m) => {
    if (m.sessionId !== session) return;
    const p = m.params || {};
    if (m.method === "Network.requestWillBeSent" && p.type === "Document" && p.frameId === mainFrame) {
        if (p.redirectResponse) {
            const prev = chain.findLast((e) => e.requestId === p.requestId && e.status === null);
            if (prev) prev.status = p.redirectResponse.status;
        }
        chain.push({ requestId: p.requestId, url: p.request.url, method: p.request.method, status: null });
    } else if (m.method === "Network.responseReceived" && p.type === "Document" && p.frameId === mainFrame) {
        const e = chain.findLast((x) => x.requestId === p.requestId && x.status === null);
        if (e) e.status = p.response.status;
    } else if (m.method === "Network.loadingFailed" && p.type === "Document" && p.frameId === mainFrame) {
        const e = chain.findLast((x) => x.requestId === p.requestId && x.status === null);
        if (e) e.status = `failed: ${p.errorText}${p.blockedReason ? " (" + p.blockedReason + ")" : ""}`;
    } else if (m.method === "Log.entryAdded" && /Content Security Policy/i.test(p.entry.text)) {
        violations.push({ source: "console", text: p.entry.text, url: p.entry.url || null });
    } else if (m.method === "Runtime.consoleAPICalled" && p.type === "warning" && p.args?.[0]?.value?.startsWith?.("CSP:")) {
        violations.push({ source: "securitypolicyviolation", text: p.args[0].value });
    } else if (m.method === "Page.javascriptDialogOpening") {
        send("Page.handleJavaScriptDialog", { accept: true }).catch(() => {});
    }
});

async function start() {
    const { targetId } = await send("Target.createTarget", { url: "about:blank" }, null);
    ({ sessionId: session } = await send("Target.attachToTarget", { targetId, flatten: true }, null));
    const { frameTree } = await send("Page.getFrameTree");
    mainFrame = frameTree.frame.id;
    await send("Page.enable");
    await send("Network.enable");
    await send("Log.enable");
    await send("Runtime.enable");
    await send("Emulation.setDeviceMetricsOverride", { width: 1000, height: 1400, deviceScaleFactor: 1, mobile: false });
    // Scripts the browser injects are not subject to the page's CSP; this one
    // reports the violations the page itself sees (securitypolicyviolation).
    await send("Page.addScriptToEvaluateOnNewDocument", {
        source: `document.addEventListener("securitypolicyviolation", (e) =>
            console.warn("CSP: " + e.effectiveDirective + " blocked " + e.blockedURI + " on " + e.documentURI));`,
    });
}

// Runs act() and waits until the main frame has committed a new document and
// then fired its load event.
async function navigation(act, ms = NAV_TIMEOUT_MS) {
    chain = [];
    let committed = false;
    const loaded = waitEvent((m) => {
        if (m.sessionId !== session) return false;
        if (m.method === "Page.frameNavigated" && m.params.frame.id === mainFrame) committed = true;
        return committed && m.method === "Page.loadEventFired";
    }, ms, "the navigation and its load event");
    loaded.catch(() => {});  // awaited below; an act() that throws must not leave it unhandled
    await act();
    await loaded;
    return { chain: chain.map(({ url, method, status }) => ({ url, method, status })), url: await evaluate("location.href") };
}

async function evaluate(expression) {
    const r = await send("Runtime.evaluate", { expression, returnByValue: true, awaitPromise: true });
    if (r.exceptionDetails) throw new Error(`evaluate: ${r.exceptionDetails.exception?.description || r.exceptionDetails.text}`);
    return r.result.value;
}

// What names a link or button: its text, or (by "label") its aria-label.
const nameOf = (by) => by === "label" ? `((e) => e.getAttribute("aria-label"))` : `((e) => e.textContent.trim())`;

// The centre of the visible link or button whose text (or aria-label) is
// text, scrolled into view; an error naming what the page offers when there
// is none or several.
async function target(text, by) {
    const found = await evaluate(`(() => {
        const want = ${JSON.stringify(text)};
        const name = ${nameOf(by)};
        const all = [...document.querySelectorAll("a, button")];
        const hits = all.filter((e) => name(e) === want && e.getClientRects().length > 0);
        if (hits.length !== 1)
            return { error: hits.length + " elements " + JSON.stringify(want) + "; the page offers: " +
                            JSON.stringify(all.map(name)) };
        hits[0].scrollIntoView({ block: "center" });
        const r = hits[0].getBoundingClientRect();
        return { x: r.left + r.width / 2, y: r.top + r.height / 2, tag: hits[0].tagName.toLowerCase(),
                 href: hits[0].href || null, form: hits[0].form ? new URL(hits[0].form.getAttribute("action") ?? "", location.href).href : null };
    })()`);
    if (found.error) throw new Error(found.error);
    return found;
}

async function click(text, ms, by) {
    const t = await target(text, by);
    // What is under the pointer must be the element itself (nothing covers it).
    const hit = await evaluate(`(() => { const e = document.elementFromPoint(${t.x}, ${t.y}), name = ${nameOf(by)};
                                         const a = e?.closest("a, button");
                                         return e ? (a ? name(a) : e.tagName) : null; })()`);
    if (hit !== text) throw new Error(`${JSON.stringify(text)} is covered by ${JSON.stringify(hit)}`);
    const nav = await navigation(async () => {
        const at = { x: t.x, y: t.y, button: "left", clickCount: 1 };
        await send("Input.dispatchMouseEvent", { type: "mouseMoved", x: t.x, y: t.y });
        await send("Input.dispatchMouseEvent", { type: "mousePressed", ...at });
        await send("Input.dispatchMouseEvent", { type: "mouseReleased", ...at });
    }, ms);
    return { ...nav, clicked: t };
}

let viewportWidth = 1000;

async function screenshot(path) {
    const { cssContentSize } = await send("Page.getLayoutMetrics");
    const { data } = await send("Page.captureScreenshot", {
        format: "png", captureBeyondViewport: true,
        clip: { x: 0, y: 0, width: Math.max(viewportWidth, Math.ceil(cssContentSize.width)),
                height: Math.ceil(cssContentSize.height), scale: 1 },
    });
    fs.writeFileSync(path, Buffer.from(data, "base64"));
    return { path, bytes: fs.statSync(path).size };
}

const commands = {
    goto: (c) => navigation(() => send("Page.navigate", { url: c.url }).then((r) => {
        if (r.errorText) throw new Error(`navigate ${c.url}: ${r.errorText}`);
    })),
    click: (c) => c.label !== undefined ? click(c.label, c.timeout_ms, "label") : click(c.text, c.timeout_ms, "text"),
    file: async (c) => {
        const { root } = await send("DOM.getDocument", { depth: 0 });
        const { nodeId } = await send("DOM.querySelector", { nodeId: root.nodeId, selector: c.selector });
        if (!nodeId) throw new Error(`nothing matches ${c.selector}`);
        await send("DOM.setFileInputFiles", { nodeId, files: [c.path] });
        return {};
    },
    viewport: async (c) => {
        viewportWidth = c.width;
        await send("Emulation.setDeviceMetricsOverride",
                   { width: c.width, height: c.height, deviceScaleFactor: 1, mobile: !!c.mobile });
        return {};
    },
    reload: () => navigation(() => send("Page.reload", { ignoreCache: true })),
    page: async () => evaluate(`({ url: location.href, title: document.title,
                                   text: document.body ? document.body.innerText : "",
                                   html: document.documentElement.outerHTML })`),
    screenshot: (c) => screenshot(c.path),
    eval: async (c) => ({ value: await evaluate(c.expression) }),
    csp: async () => ({ violations }),
    quit: async () => {
        quitting = true;
        await send("Browser.close", {}, null).catch(() => {});
        return {};
    },
};

function answer(obj) { process.stdout.write(JSON.stringify(obj) + "\n"); }

const ready = start();
const rl = readline.createInterface({ input: process.stdin });
let queue = Promise.resolve();
rl.on("line", (line) => {
    queue = queue.then(async () => {
        let c;
        try {
            await ready;
            c = JSON.parse(line);
            const fn = commands[c.cmd];
            if (!fn) throw new Error(`unknown command ${c.cmd}`);
            log(`> ${line}`);
            answer({ ok: true, ...(await fn(c)) });
        } catch (e) {
            log(`! ${e.stack}`);
            answer({ ok: false, error: e.message });
        }
        if (c?.cmd === "quit") {
            setTimeout(() => { chrome.kill("SIGKILL"); process.exit(0); }, 5000).unref();
        }
    });
});
rl.on("close", () => { queue.then(() => { quitting = true; chrome.kill("SIGTERM"); }); });
