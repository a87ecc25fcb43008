#!/usr/bin/env node
// polar_webhook_typecheck.mjs — checks webhook bodies against @polar-sh/sdk.
//
//   node test/tools/polar_webhook_typecheck.mjs [--modules DIR] [--workdir DIR] FILE...
//
// Each FILE is JSON Lines: either the mock receiver's log (test/mock/providers.py;
// every POST entry's "body" is taken, other requests are skipped) or one webhook
// body per line.  Every body is checked by two oracles from the SDK:
//
//   tsc  A TypeScript file assigns each body, as an object literal, to a
//        variable of the SDK's wire type for its event (the `$Outbound` type,
//        snake_case as sent), narrowed to the member of the SDK's union for
//        the benefit type the body carries:
//            Omit<WebhookBenefitGrantCreatedPayload$Outbound, "data">
//              & { data: BenefitGrantLicenseKeysWebhook$Outbound }
//        (the narrowed data type must extend the payload's own `data` type,
//        and each variable is assigned again to the plain payload type), and
//        `tsc --noEmit --strict` compiles it.  A missing or mistyped required
//        property fails, and so does any property the SDK does not declare
//        (TypeScript's excess property check on object literals), except the
//        extensions allowed below, which are removed from the literal first.
//   zod  The SDK's runtime schema for the event (`Webhook...Payload$inboundSchema`,
//        what the SDK's validateEvent runs after the signature check) parses
//        the body as received; it checks the wire JSON (date-time strings,
//        literals, nullability) and gives paths.  The SDK must also read the
//        body as the benefit type the body names (its unions pick a member by
//        best match).
//
// The project's own rules are checked too: every time (`timestamp`, `*_at`) is
// RFC 3339 in UTC with a Z, and the extension values have the JSON type noted.
//
// One line per body ("ok N type (benefit type) source" or "FAIL N ..."), then,
// for a failure, one indented line per error with its JSON path; then the
// extensions met, and a last line counting the bodies.  Exit status 0 when
// every body passed, 1 otherwise, 2 on bad use.
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync, existsSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

// Documented extensions: members the project sends beyond Polar's shapes,
// allowed only where listed (the README lists them too, under Delivery).
// `at` names the object: "envelope" (the body), "benefit" (the benefit
// object: data of benefit.*, data.benefit of grants), "benefit.properties",
// "customer" (data.customer of grants), "grant.properties" (data.properties
// and data.previous_properties of grants), "grant.error" (data.error).
// `benefit` limits an entry to one benefit type (as sent: downloadables,
// meter_credit); `json` is the JSON type the value must have.
const EXTENSIONS = [
  // The Polar webhook format version the payload follows (src/events.c).
  { at: "envelope", key: "api_version", json: "string" },
  // Polar's API sends it (its customer schema has it), @polar-sh/sdk 0.49's
  // types no longer declare it; always null here (no events are ingested).
  { at: "customer", key: "first_user_event_at", json: "null|string" },
  // Several repositories per benefit (README, Catalog); repository_owner,
  // repository_name and permission carry the first, as Polar has them.
  { at: "benefit.properties", benefit: "github_repository", key: "repositories", json: "array" },
  // Several roles per benefit (README, Catalog); role_id carries the first.
  { at: "benefit.properties", benefit: "discord", key: "roles", json: "array" },
  // Machines and Polar's selectable behaviours of a license benefit (README,
  // License keys): heartbeats of activations, one key per grant, subset
  // conditions; present only when not their defaults.
  { at: "benefit.properties.activations", benefit: "license_keys", key: "heartbeat", json: "string" },
  { at: "benefit.properties", benefit: "license_keys", key: "key_per", json: "string" },
  { at: "benefit.properties", benefit: "license_keys", key: "conditions_match", json: "string" },
  // The low-balance warning of a meter (README, Grants).
  { at: "benefit.properties", benefit: "meter_credit", key: "low_balance_threshold", json: "number" },
  // What a GitHub or Discord grant delivered (src/provider_jobs.c): the
  // account's username, every repository, every role id.
  { at: "grant.properties", benefit: "github_repository", key: "username", json: "string|null" },
  { at: "grant.properties", benefit: "github_repository", key: "repositories", json: "array" },
  { at: "grant.properties", benefit: "discord", key: "username", json: "string|null" },
  { at: "grant.properties", benefit: "discord", key: "role_ids", json: "array" },
  // The grant's error (README, Grants; Delivery): the action the customer
  // must take (link_github, link_discord) or, for a provider's refusal, the
  // job's action, provider, HTTP status and outbox job id.
  { at: "grant.error", key: "action", json: "string" },
  { at: "grant.error", key: "provider", json: "string" },
  { at: "grant.error", key: "status", json: "number|null" },
  { at: "grant.error", key: "job_id", json: "number" },
];

// Polar's event types the extension emits, and the SDK module of each payload.
const EVENTS = {
  "benefit.created": { module: "webhookbenefitcreatedpayload", type: "WebhookBenefitCreatedPayload", kind: "benefit" },
  "benefit.updated": { module: "webhookbenefitupdatedpayload", type: "WebhookBenefitUpdatedPayload", kind: "benefit" },
  "benefit_grant.created": { module: "webhookbenefitgrantcreatedpayload", type: "WebhookBenefitGrantCreatedPayload", kind: "grant" },
  "benefit_grant.updated": { module: "webhookbenefitgrantupdatedpayload", type: "WebhookBenefitGrantUpdatedPayload", kind: "grant" },
  "benefit_grant.cycled": { module: "webhookbenefitgrantcycledpayload", type: "WebhookBenefitGrantCycledPayload", kind: "grant" },
  "benefit_grant.revoked": { module: "webhookbenefitgrantrevokedpayload", type: "WebhookBenefitGrantRevokedPayload", kind: "grant" },
};

// Benefit types as sent, and the SDK's component names for their objects.
const BENEFITS = {
  license_keys: "LicenseKeys",
  github_repository: "GitHubRepository",
  discord: "Discord",
  downloadables: "Downloadables",
  meter_credit: "MeterCredit",
  custom: "Custom",
  feature_flag: "FeatureFlag",
};

const RFC3339_UTC = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z$/;

function usage(message) {
  process.stderr.write(`polar_webhook_typecheck: ${message}\n` +
    "usage: node polar_webhook_typecheck.mjs [--modules DIR] [--workdir DIR] FILE...\n");
  process.exit(2);
}

const args = process.argv.slice(2);
let modules = resolve(dirname(fileURLToPath(import.meta.url)), "../mock/node_modules");
let workdir = null;
const files = [];
for (let i = 0; i < args.length; i++) {
  if (args[i] === "--modules") modules = resolve(args[++i] ?? usage("--modules needs a directory"));
  else if (args[i] === "--workdir") workdir = resolve(args[++i] ?? usage("--workdir needs a directory"));
  else if (args[i].startsWith("--")) usage(`unknown option ${args[i]}`);
  else files.push(args[i]);
}
if (files.length === 0) usage("no input file");
const sdk = join(modules, "@polar-sh/sdk");
const tsc = join(modules, "typescript/bin/tsc");
if (!existsSync(join(sdk, "package.json")) || !existsSync(tsc))
  usage(`@polar-sh/sdk or typescript missing under ${modules} (run test/deps.sh)`);
const sdkVersion = JSON.parse(readFileSync(join(sdk, "package.json"), "utf8")).version;
const components = join(sdk, "dist/esm/models/components");

// The bodies, with where each came from.
const bodies = [];
for (const file of files) {
  const lines = readFileSync(file, "utf8").split("\n");
  lines.forEach((line, n) => {
    if (line.trim() === "") return;
    const source = `${file}:${n + 1}`;
    let entry;
    try {
      entry = JSON.parse(line);
    } catch (e) {
      bodies.push({ source, error: `not JSON: ${e.message}` });
      return;
    }
    if (typeof entry.method === "string" && "body" in entry) {    // the mock's log
      if (entry.method !== "POST") return;
      const where = `${entry.path} ${entry.headers?.["webhook-id"] ?? ""}`.trim();
      try {
        bodies.push({ source: where, body: JSON.parse(entry.body) });
      } catch (e) {
        bodies.push({ source: where, error: `body is not JSON: ${e.message}` });
      }
    } else {
      bodies.push({ source, body: entry });
    }
  });
}

const isObject = (v) => v !== null && typeof v === "object" && !Array.isArray(v);
const jsonType = (v) => (v === null ? "null" : Array.isArray(v) ? "array" : typeof v);
const pathOf = (parts) =>
  "$" + parts.map((p) => (typeof p === "number" ? `[${p}]` : /^[A-Za-z_]\w*$/.test(p) ? `.${p}` : `[${JSON.stringify(p)}]`)).join("");

// Where each object role sits in a body of the event's kind.
function roles(kind) {
  return kind === "benefit"
    ? { envelope: [[]], benefit: [["data"]], "benefit.properties": [["data", "properties"]],
        "benefit.properties.activations": [["data", "properties", "activations"]] }
    : {
        envelope: [[]],
        benefit: [["data", "benefit"]],
        "benefit.properties": [["data", "benefit", "properties"]],
        "benefit.properties.activations": [["data", "benefit", "properties", "activations"]],
        "grant.properties": [["data", "properties"], ["data", "previous_properties"]],
        "grant.error": [["data", "error"]],
        customer: [["data", "customer"]],
      };
}

const at = (value, parts) => parts.reduce((v, p) => (v == null ? undefined : v[p]), value);

const extensionsSeen = new Map();

// Removes the allowed extensions from a copy of the body; returns the copy and
// the errors found in the extensions' values.
function stripExtensions(body, kind, benefitType) {
  const copy = structuredClone(body);
  const errors = [];
  const where = roles(kind);
  for (const ext of EXTENSIONS) {
    if (ext.benefit && ext.benefit !== benefitType) continue;
    for (const parts of where[ext.at] ?? []) {
      const object = at(copy, parts);
      if (!isObject(object) || !(ext.key in object)) continue;
      const value = object[ext.key];
      extensionsSeen.set(`${ext.at}.${ext.key}`, (extensionsSeen.get(`${ext.at}.${ext.key}`) ?? 0) + 1);
      const types = ext.json.split("|");
      if (!types.includes(jsonType(value)))
        errors.push({ path: pathOf([...parts, ext.key]), oracle: "extension",
                      message: `extension ${ext.key} must be ${ext.json}, is ${jsonType(value)}` });
      delete object[ext.key];
    }
  }
  return { copy, errors };
}

// Times in RFC 3339 UTC with a Z, wherever they are.
function checkTimes(value, parts, errors) {
  if (Array.isArray(value)) value.forEach((v, i) => checkTimes(v, [...parts, i], errors));
  else if (isObject(value))
    for (const [k, v] of Object.entries(value)) {
      if ((k === "timestamp" || k.endsWith("_at")) && v !== null && typeof v === "string" && !RFC3339_UTC.test(v))
        errors.push({ path: pathOf([...parts, k]), oracle: "rfc3339", message: `${JSON.stringify(v)} is not RFC 3339 UTC with a Z` });
      else if ((k === "timestamp" || k.endsWith("_at")) && v !== null && typeof v !== "string")
        errors.push({ path: pathOf([...parts, k]), oracle: "rfc3339", message: `a time must be a string, is ${jsonType(v)}` });
      if (k !== "metadata") checkTimes(v, [...parts, k], errors);    // metadata keys are anyone's
    }
}

// A zod issue in words (the SDK's zod/v4-mini carries no messages of its own).
function describe(issue, value) {
  const got = value === undefined ? "missing" : jsonType(value);
  switch (issue.code) {
    case "invalid_type": return `expected ${issue.expected}, got ${got}`;
    case "invalid_value": return `expected ${issue.values?.map((v) => JSON.stringify(v)).join(" or ")}, got ${value === undefined ? "missing" : JSON.stringify(value)}`;
    case "invalid_format": return `${JSON.stringify(value)} is not a valid ${issue.format}`;
    default: return issue.message && issue.message !== "Invalid input" ? `${issue.code}: ${issue.message}` : `${issue.code} (got ${got})`;
  }
}

// zod issues with their paths under prefix; a union's failure is shown as
// the issues of its closest member (the one with the fewest).
function zodIssues(issues, prefix, out, root) {
  for (const issue of issues) {
    const parts = [...prefix, ...(issue.path ?? [])];
    if (issue.code === "invalid_union" && Array.isArray(issue.errors) && issue.errors.length) {
      // A union of scalars (an enum, or an open enum that also takes any
      // string): one issue listing what it takes.
      const single = issue.errors.every((e) => e.length === 1 && !(e[0].path ?? []).length &&
                                               (e[0].code === "invalid_value" || e[0].code === "invalid_type"));
      if (single) {
        const takes = issue.errors.flatMap((e) => e[0].code === "invalid_value"
          ? (e[0].values ?? []).map((v) => JSON.stringify(v)) : [`any ${e[0].expected}`]);
        const value = at(root, parts);
        out.push({ path: pathOf(parts), oracle: "zod",
                   message: `expected one of ${takes.join(", ")}, got ${value === undefined ? "missing" : JSON.stringify(value)}` });
        continue;
      }
      const closest = issue.errors.filter((e) => e.length).sort((a, b) => a.length - b.length)[0];
      if (closest) {
        zodIssues(closest, parts, out, root);
        continue;
      }
    }
    out.push({ path: pathOf(parts), oracle: "zod", message: describe(issue, at(root, parts)) });
  }
}

// tsc spells out whole object types in its messages: keep their first words.
const shorten = (text) => text.replace(/'\{ [^']{60,}\}'/g, (t) => `${t.slice(0, 58)}... }'`);

const load = async (module) => import(pathToFileURL(join(components, `${module}.js`)).href);

// First pass: classify, strip extensions, project rules, zod.
for (const [i, item] of bodies.entries()) {
  item.n = i + 1;
  item.errors = [];
  if (item.error) {
    item.errors.push({ path: "$", oracle: "input", message: item.error });
    continue;
  }
  const body = item.body;
  item.type = isObject(body) ? body.type : undefined;
  const event = EVENTS[item.type];
  if (!event) {
    item.errors.push({ path: "$.type", oracle: "input", message: `${JSON.stringify(item.type)} is not a Polar webhook event type this checker knows` });
    continue;
  }
  item.event = event;
  item.benefitType = event.kind === "benefit" ? body.data?.type : body.data?.benefit?.type;
  if (!(item.benefitType in BENEFITS)) {
    item.errors.push({ path: event.kind === "benefit" ? "$.data.type" : "$.data.benefit.type", oracle: "input",
                       message: `${JSON.stringify(item.benefitType)} is not a benefit type of the SDK` });
    continue;
  }
  const { copy, errors } = stripExtensions(body, event.kind, item.benefitType);
  item.stripped = copy;
  item.errors.push(...errors);
  checkTimes(body, [], item.errors);

  const payload = await load(event.module);
  const result = payload[`${event.type}$inboundSchema`].safeParse(body);
  if (result.success) {
    const read = event.kind === "benefit" ? result.data.data?.type : result.data.data?.benefit?.type;
    if (read !== item.benefitType)
      item.errors.push({ path: event.kind === "benefit" ? "$.data" : "$.data.benefit", oracle: "zod",
                         message: `the SDK reads the body as a ${read} benefit, not ${item.benefitType}` });
  } else {
    // The envelope's own issues, then the data's against the benefit type's schema.
    zodIssues(result.error.issues.filter((x) => x.path?.[0] !== "data"), [], item.errors, body);
    const name = BENEFITS[item.benefitType];
    const dataModule = event.kind === "benefit" ? `benefit${name.toLowerCase()}` : `benefitgrant${name.toLowerCase()}webhook`;
    const dataType = event.kind === "benefit" ? `Benefit${name}` : `BenefitGrant${name}Webhook`;
    const data = (await load(dataModule))[`${dataType}$inboundSchema`].safeParse(body.data);
    if (data.success) zodIssues(result.error.issues.filter((x) => x.path?.[0] === "data"), [], item.errors, body);
    else zodIssues(data.error.issues, ["data"], item.errors, body);
  }
}

// Second pass: one TypeScript file for every body, one tsc run.
const checked = bodies.filter((b) => b.stripped);
if (checked.length) {
  const dir = workdir ?? mkdtempSync(join(tmpdir(), "polar-typecheck-"));
  const lines = [];
  const lineInfo = [];     // per line (0-based): {item, path}
  const push = (text, item, path) => { lines.push(text); lineInfo.push({ item, path }); };
  const imports = new Map();
  const use = (module, type) => {
    imports.set(`${module}|${type}`, { module, type });
    return `${type}$Outbound`;
  };
  // Writes value as a literal, one member per line, each line knowing its JSON path.
  const emit = (value, parts, indent, lead, tail, item) => {
    const pad = "  ".repeat(indent);
    if (Array.isArray(value) && value.length) {
      push(`${pad}${lead}[`, item, pathOf(parts));
      value.forEach((v, i) => emit(v, [...parts, i], indent + 1, "", i < value.length - 1 ? "," : "", item));
      push(`${pad}]${tail}`, item, pathOf(parts));
    } else if (isObject(value) && Object.keys(value).length) {
      push(`${pad}${lead}{`, item, pathOf(parts));
      const keys = Object.keys(value);
      keys.forEach((k, i) => emit(value[k], [...parts, k], indent + 1, `${JSON.stringify(k)}: `, i < keys.length - 1 ? "," : "", item));
      push(`${pad}}${tail}`, item, pathOf(parts));
    } else {
      push(`${pad}${lead}${JSON.stringify(value)}${tail}`, item, pathOf(parts));
    }
  };
  const header = [];
  const bodyLines = [];
  for (const item of checked) {
    const name = BENEFITS[item.benefitType];
    const payloadType = use(item.event.module, item.event.type);
    const dataType = item.event.kind === "benefit"
      ? use(`benefit${name.toLowerCase()}`, `Benefit${name}`)
      : use(`benefitgrant${name.toLowerCase()}webhook`, `BenefitGrant${name}Webhook`);
    push(`// body ${item.n}: ${item.type} (${item.benefitType}) from ${item.source.replace(/[\r\n]/g, " ")}`, item, "$");
    emit(item.stripped, [], 0, `const body${item.n}: Wire<${payloadType}, ${dataType}> = `, ";", item);
    push(`const sdk${item.n}: ${payloadType} = body${item.n};`, item, "$");
  }
  bodyLines.push(...lines);
  const bodyInfo = [...lineInfo];
  for (const { module, type } of imports.values())
    header.push(`import type { ${type}$Outbound } from ${JSON.stringify(join(components, `${module}.js`))};`);
  header.push(
    "// The SDK's payload type with its data narrowed to one member of the data union.",
    "type Wire<P extends { data: unknown }, D extends P[\"data\"]> = Omit<P, \"data\"> & { data: D };",
    "export {};",
  );
  const source = [...header, ...bodyLines].join("\n") + "\n";
  writeFileSync(join(dir, "webhook_bodies.ts"), source);
  writeFileSync(join(dir, "tsconfig.json"), JSON.stringify({
    compilerOptions: {
      strict: true, noEmit: true, target: "es2022", module: "nodenext", moduleResolution: "nodenext",
      skipLibCheck: true, types: [], noUnusedLocals: false,
    },
    files: ["webhook_bodies.ts"],
  }, null, 2));
  const run = spawnSync(process.execPath, [tsc, "-p", join(dir, "tsconfig.json"), "--pretty", "false"],
                        { encoding: "utf8", cwd: dir, maxBuffer: 64 * 1024 * 1024 });
  const output = `${run.stdout ?? ""}${run.stderr ?? ""}`;
  // "webhook_bodies.ts(LINE,COL): error TSnnnn: message" then indented elaborations.
  let current = null;
  const orphans = [];
  for (const line of output.split("\n")) {
    const m = /^(.*?)\((\d+),(\d+)\): error (TS\d+): (.*)$/.exec(line);
    if (m) {
      const info = m[1].endsWith("webhook_bodies.ts") ? bodyInfo[Number(m[2]) - 1 - header.length] : undefined;
      current = { message: `${m[4]} ${shorten(m[5])}`, info };
      if (info) {
        let path = info.path;
        const missing = /^Property '([^']+)' is missing in type/.exec(m[5]);
        if (missing) path = path === "$" ? `$.${missing[1]}` : `${path}.${missing[1]}`;
        current.error = { path, oracle: "tsc", message: current.message };
        info.item.errors.push(current.error);
      } else {
        orphans.push(line);
      }
    } else if (current && line.startsWith("  ") && line.trim()) {
      const detail = line.trim();
      if (current.error) {
        // The innermost elaboration names the member at fault: keep it in the line.
        const missing = /^Property '([^']+)' is missing in type/.exec(detail);
        if (missing && !current.error.path.endsWith(`.${missing[1]}`)) current.error.path += `.${missing[1]}`;
        current.error.message += ` | ${shorten(detail)}`;
      } else {
        orphans.push(line);
      }
    } else if (line.trim()) {
      orphans.push(line);
    }
  }
  if (run.status !== 0 && !checked.some((b) => b.errors.some((e) => e.oracle === "tsc"))) {
    process.stdout.write(`tsc failed without an error on a body (status ${run.status}${run.error ? `, ${run.error.message}` : ""}):\n${output}\n`);
    process.exit(1);
  }
  if (orphans.length) process.stdout.write(`tsc said:\n${orphans.join("\n")}\n`);
  if (!workdir) rmSync(dir, { recursive: true, force: true });
}

let failed = 0;
for (const item of bodies) {
  const label = `${item.n} ${item.type ?? "?"} (${item.benefitType ?? "?"}) ${item.source}`;
  if (item.errors.length === 0) {
    process.stdout.write(`ok ${label}\n`);
    continue;
  }
  failed++;
  process.stdout.write(`FAIL ${label}\n`);
  for (const e of item.errors) process.stdout.write(`    ${e.path}: [${e.oracle}] ${e.message}\n`);
}
if (extensionsSeen.size)
  process.stdout.write(`extensions allowed and seen: ${[...extensionsSeen].map(([k, n]) => `${k} x${n}`).join(", ")}\n`);
process.stdout.write(`polar_webhook_typecheck: @polar-sh/sdk ${sdkVersion}, ${bodies.length} bodies, ` +
                     `${bodies.length - failed} ok, ${failed} failing\n`);
process.exit(failed === 0 && bodies.length > 0 ? 0 : 1);
