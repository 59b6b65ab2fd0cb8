// Drives berth's web console in the system's headless chromium (playwright-core), as
// tests/e2e/test_console.py runs it: sign in, create a group from the form, see it Running
// (live, without a reload), follow its logs, see a metrics chart, run a command in the
// terminal, check the CSRF refusal, delete the group; a second account sees none of it.
//
// Environment: BERTH_URL, KEY1_ID, KEY1_SECRET, KEY2_ID, KEY2_SECRET, IMAGE, SHOTS (a
// directory for the screenshots), CHROMIUM (default /usr/bin/chromium).
// Exits 0 when every check passed; otherwise prints what failed and exits 1.

import { chromium } from "playwright-core";
import fs from "node:fs";
import path from "node:path";

const env = (k) => {
  const v = process.env[k];
  if (!v) throw new Error(`${k} is not set`);
  return v;
};
const BASE = env("BERTH_URL").replace(/\/$/, "");
const SHOTS = env("SHOTS");
const IMAGE = env("IMAGE");
fs.mkdirSync(SHOTS, { recursive: true });

const t0 = Date.now();
const log = (m) => console.log(`[${((Date.now() - t0) / 1000).toFixed(1)}s] ${m}`);
function check(cond, what) {
  if (!cond) throw new Error(`check failed: ${what}`);
  log(`ok: ${what}`);
}
async function shot(page, name) {
  const file = path.join(SHOTS, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  log(`screenshot ${file}`);
}

async function signIn(page, id, secret) {
  await page.goto(`${BASE}/console/`);
  check(page.url().endsWith("/console/sign-in"), "an anonymous visit lands on the sign-in page");
  await page.getByLabel("AccessKeyId").fill(id);
  await page.getByLabel("AccessKeySecret").fill(secret);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.waitForURL(/\/console\/groups$/);
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox"],
});
let page;
let failed = false;
try {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  page = await ctx.newPage();
  // Uncaught script errors, and CSP violations (the refused answers' 4xx are expected).
  const consoleErrors = [];
  page.on("pageerror", (e) => consoleErrors.push(String(e)));
  page.on("console", (m) => {
    if (m.type() === "error" && !m.text().startsWith("Failed to load resource")) consoleErrors.push(m.text());
  });
  page.on("dialog", (d) => d.accept());

  // A wrong secret is refused with the API's error; the right one signs in.
  await page.goto(`${BASE}/console/sign-in`);
  await page.getByLabel("AccessKeyId").fill(env("KEY1_ID"));
  await page.getByLabel("AccessKeySecret").fill("not-the-secret");
  await page.getByRole("button", { name: "Sign in" }).click();
  check((await page.locator(".error").innerText()).includes("InvalidAccessKey"), "a wrong secret is refused");
  await shot(page, "sign-in-refused");
  await signIn(page, env("KEY1_ID"), env("KEY1_SECRET"));
  const [cookie] = (await ctx.cookies()).filter((c) => c.name === "berth_console");
  check(cookie && cookie.httpOnly && cookie.sameSite === "Strict" && cookie.path === "/console",
    "the session cookie is HttpOnly, SameSite=Strict, Path=/console");
  const csp = (await page.request.get(`${BASE}/console/groups`)).headers()["content-security-policy"];
  check(csp && csp.includes("script-src 'self'") && !csp.includes("script-src 'self' 'unsafe-inline'"),
    "pages carry a CSP without inline scripts");

  // Next to the console the API keeps its own answers.
  const api404 = await page.request.get(`${BASE}/no-such-path`);
  check(api404.status() === 404 && api404.headers()["content-type"].startsWith("application/json"),
    "an unknown path outside /console is still the API's JSON error");
  const console404 = await page.request.get(`${BASE}/console/no-such-page`);
  check(console404.status() === 404 && console404.headers()["content-type"].startsWith("text/html"),
    "an unknown page of the console is its own 404 page");

  // Create from the form; the command preview first.
  await page.goto(`${BASE}/console/groups/new`);
  const name = `console-${Date.now() % 100000}`;
  await page.getByLabel("Name", { exact: true }).fill(name);
  await page.getByLabel("Image", { exact: true }).fill(IMAGE);
  await page.getByLabel("Size (price per hour)").selectOption("0.25/0.5");
  check((await page.locator("#size option:checked").innerText()).includes("/hour"), "the size shows its price per hour");
  await page.getByLabel("Command and arguments (one per line)").fill(
    "sh\n-c\ntrap 'exit 0' TERM; echo \"$GREETING\"; i=0; while true; do echo tick-$i; i=$((i+1)); sleep 1; done");
  await page.getByLabel("Environment (KEY=VALUE, one per line)").fill("GREETING=hello-from-the-console");
  await page.getByLabel(/^Volumes/).fill("data:/data");
  // A config-file volume, mounted read-only.
  await page.locator("details.volumes summary").click();
  await page.locator("#vol-1-name").fill("conf");
  await page.locator("#vol-1-kind").selectOption("config");
  await page.locator("#vol-1-file-1-path").fill("app/app.conf");
  await page.locator("#vol-1-file-1-content").fill("greeting = config-from-the-console\n");
  await page.locator("#vol-1-mount_path").fill("/etc/app");
  await page.locator("#vol-1-read_only").check();
  check(await page.locator("#vol-1-kind option[value=nfs]").count() === 0, "NFS is not offered when the operator allows no server");
  await page.getByRole("button", { name: "Show the command" }).click();
  const run = await page.locator("#berth-run").innerText();
  check(run.startsWith(`berth run ${IMAGE} --name ${name} --cpu 0.25 --memory 0.5 -e GREETING=hello-from-the-console`),
    "the equivalent berth run command is shown");
  check(run.includes("-v data:/data"), "the command has the volume");
  check((await page.locator("#sdk").innerText()).includes("CreateContainerGroupRequest"), "the SDK snippet is shown");
  check((await page.locator("#sdk").innerText()).includes("config_file_volume="), "the SDK snippet has the config-file volume");
  check(await page.locator("#vol-1-file-2-path").count() === 1 && await page.locator("#vol-2-name").count() === 1,
    "the preview keeps the volume and offers one more volume and file");
  await shot(page, "create");
  // A name the API refuses comes back with the API's message, the form kept.
  await page.getByLabel("Name", { exact: true }).fill("Bad_Name");
  await page.getByRole("button", { name: "Create", exact: true }).click();
  check((await page.locator(".error").innerText()).includes("InvalidParameter"), "the API's validation message is shown");
  check(await page.getByLabel("Image", { exact: true }).inputValue() === IMAGE, "the form keeps what was entered");
  await page.getByLabel("Name", { exact: true }).fill(name);
  await page.getByRole("button", { name: "Create", exact: true }).click();
  await page.waitForURL(/\/console\/groups\/eci-[a-z0-9]+$/, { waitUntil: "domcontentloaded" });
  const gid = page.url().split("/").pop();
  log(`created ${gid}`);

  // The list turns Running by itself (the rows are polled, no reload).
  await page.goto(`${BASE}/console/groups`);
  const row = page.locator("#group-rows tr", { hasText: gid });
  await row.waitFor();
  await page.waitForFunction((id) => {
    const r = [...document.querySelectorAll("#group-rows tr")].find((tr) => tr.textContent.includes(id));
    return r && r.querySelector(".status").textContent === "Running";
  }, gid, { timeout: 60000 });
  check(true, "the group shows Running in the list without a reload");
  await page.getByLabel("Name contains").fill(name.slice(0, 8));
  await page.getByRole("button", { name: "Apply" }).click();
  check(await page.locator("#group-rows tr", { hasText: gid }).count() === 1, "the name search finds it");
  await page.getByLabel("Status").selectOption("Failed");
  await page.getByRole("button", { name: "Apply" }).click();
  check(await page.locator("#group-rows tr", { hasText: gid }).count() === 0, "the status filter leaves it out");
  await page.goto(`${BASE}/console/groups`);
  await shot(page, "groups");

  // The group page: containers, live logs.
  await page.goto(`${BASE}/console/groups/${gid}`);
  check((await page.locator("table", { hasText: "Containers" }).innerText()).includes("Running"), "the container is Running");
  // The status, containers and events are fetched again by themselves: a mark put on the
  // rendered status goes when they are replaced.
  await page.evaluate(() => { document.getElementById("group-status").dataset.mark = "old"; });
  await page.waitForFunction(() => {
    const s = document.getElementById("group-status");
    return s && !s.dataset.mark && s.textContent === "Running";
  }, null, { timeout: 15000 });
  check(true, "the group's state is refreshed without a reload");
  await page.waitForFunction(() => document.getElementById("log").textContent.includes("hello-from-the-console"), null, { timeout: 20000 });
  const ticks = () => page.evaluate(() => (document.getElementById("log").textContent.match(/tick-(\d+)/g) || []).length);
  const before = await ticks();
  await page.waitForFunction((n) => (document.getElementById("log").textContent.match(/tick-(\d+)/g) || []).length >= n + 2, before, { timeout: 20000 });
  check(true, "the logs follow live");

  // Metrics: wait for samples, then the chart is drawn from them.
  const metricsUrl = `${BASE}/console/groups/${gid}/metrics`;
  for (let i = 0; ; i++) {
    const m = await page.evaluate(async (u) => (await fetch(u)).json(), metricsUrl);
    if (m.t && m.t.length >= 2) break;
    if (i > 60) throw new Error("no metric samples after 60 s");
    await new Promise((r) => setTimeout(r, 1000));
  }
  await page.reload();
  await page.locator("#chart-cpu[data-drawn=true] canvas").waitFor({ timeout: 20000 });
  await page.locator("#chart-mem[data-drawn=true] canvas").waitFor();
  check(true, "the CPU and memory charts are drawn");

  // The terminal: a command typed in xterm.js, its output shown.
  await page.getByRole("button", { name: "Open terminal" }).click();
  await page.locator("#terminal[data-open=true]").waitFor({ timeout: 20000 });
  await page.locator("#terminal .xterm").click();
  await page.keyboard.type("echo term-$((6*7))-ok\n");
  await page.waitForFunction(() => document.querySelector("#terminal .xterm-rows").textContent.includes("term-42-ok"), null, { timeout: 20000 });
  check(true, "a command run in the terminal shows its output");
  await page.keyboard.type("touch /data/x && echo vol-$((1+1))-ok\n");
  await page.waitForFunction(() => document.querySelector("#terminal .xterm-rows").textContent.includes("vol-2-ok"), null, { timeout: 20000 });
  check(true, "the volume from the form is mounted and writable");
  await page.keyboard.type("sed 's/^greeting = //' /etc/app/app/app.conf; touch /etc/app/y || echo ro-$((2+3))-ok\n");
  await page.waitForFunction(() => {
    const t = document.querySelector("#terminal .xterm-rows").textContent;
    return t.includes("config-from-the-console") && t.includes("ro-5-ok");
  }, null, { timeout: 20000 });
  check(true, "the config file from the form is in the container, mounted read-only");
  await shot(page, "group");

  // A POST without the CSRF token is refused, and changes nothing.
  const refused = await page.evaluate(async (u) => {
    const r = await fetch(u, { method: "POST", body: new URLSearchParams({}) });
    return { status: r.status, text: await r.text() };
  }, `${BASE}/console/groups/${gid}/delete`);
  check(refused.status === 403 && refused.text.includes("Forbidden.CsrfToken"), "a POST without the CSRF token is refused with 403");
  const wrong = await page.evaluate(async (u) => {
    const r = await fetch(u, { method: "POST", body: new URLSearchParams({ csrf: "0".repeat(64) }) });
    return r.status;
  }, `${BASE}/console/groups/${gid}/delete`);
  check(wrong === 403, "a POST with another token is refused with 403");
  await page.goto(`${BASE}/console/groups/${gid}`);
  check(await page.locator("#group-status").innerText() === "Running", "the refused POSTs changed nothing");

  // Image caches and usage.
  await page.goto(`${BASE}/console/caches`);
  check(await page.getByLabel("Images (one per line)").count() === 1, "the image cache page has its form");
  await shot(page, "caches");
  await page.goto(`${BASE}/console/usage`);
  await page.locator("#chart-usage[data-drawn=true]").waitFor();
  const csv = await page.evaluate(async () => {
    const r = await fetch("/console/usage.csv?by=group");
    return { type: r.headers.get("content-type"), text: await r.text() };
  });
  check(csv.type.startsWith("text/csv") && csv.text.startsWith("key,name,"), "the bill downloads as CSV");
  check(csv.text.includes(gid), "the bill by group lists the group");
  await shot(page, "usage");

  // A second account sees none of it.
  const ctx2 = await browser.newContext({ viewport: { width: 390, height: 844 } });
  const page2 = await ctx2.newPage();
  await signIn(page2, env("KEY2_ID"), env("KEY2_SECRET"));
  check(!(await page2.content()).includes(gid), "the second account's list does not show the group");
  check((await page2.locator("#group-count").innerText()).startsWith("0 "), "the second account has no groups");
  await shot(page2, "second-account-phone");
  const other = await page2.goto(`${BASE}/console/groups/${gid}`);
  check(other.status() === 404 && (await page2.content()).includes("InvalidParameter.NotFound"),
    "the first account's group is not found for the second");
  const otherMetrics = await page2.evaluate(async (u) => (await fetch(u)).status, metricsUrl);
  check(otherMetrics === 404, "nor are its metrics");
  const otherDelete = await page2.evaluate(async (u) => {
    const csrf = document.querySelector('meta[name="csrf-token"]').content;
    const r = await fetch(u, { method: "POST", body: new URLSearchParams({ csrf }) });
    return r.status;
  }, `${BASE}/console/groups/${gid}/delete`);
  check(otherDelete === 404, "and it cannot delete it");
  await shot(page2, "second-account-refused");
  await ctx2.close();

  // Update: new tags, with the confirmation accepted.
  await page.goto(`${BASE}/console/groups/${gid}`);
  await page.locator("details.update summary").click();
  await page.getByLabel(/^Tags \(KEY=VALUE/).fill("team=console");
  // and a new environment for the container, left as it is otherwise (command, volume).
  await page.locator("#update-c1-env").fill("GREETING=updated-by-the-console");
  await page.getByRole("button", { name: "Update", exact: true }).click();
  await page.waitForURL(new RegExp(`/console/groups/${gid}$`), { waitUntil: "domcontentloaded" });
  check((await page.locator(".summary").innerText()).includes("team=console"), "the update form changed the tags");
  const logsUrl = `${BASE}/console/groups/${gid}/logs?container=${name}`;
  for (let i = 0; ; i++) {
    const text = await page.evaluate(async (u) => (await fetch(u)).text(), logsUrl);
    if (text.includes("updated-by-the-console")) break;
    if (i > 60) throw new Error("the updated container did not log its new environment in 60 s");
    await new Promise((r) => setTimeout(r, 1000));
  }
  check(true, "the container was recreated with the environment from the update form");
  await page.goto(`${BASE}/console/groups/${gid}`);
  await page.waitForFunction(() => document.getElementById("group-status").textContent === "Running", null, { timeout: 30000 });
  check(true, "the updated group runs again");
  await page.goto(`${BASE}/console/groups?tag=team%3Dconsole`);
  check(await page.locator("#group-rows tr", { hasText: gid }).count() === 1, "the tag filter finds it");
  const cost = await page.locator("#group-rows tr", { hasText: gid }).locator("td").last().innerText();
  check(parseFloat(cost) > 0, `the list shows its cost so far (${cost})`);

  // Delete, with the confirmation accepted.
  await page.goto(`${BASE}/console/groups/${gid}`);
  await page.getByRole("button", { name: "Delete" }).click();
  await page.waitForURL(/\/console\/groups$/);
  await page.waitForFunction((id) => !document.getElementById("group-rows").textContent.includes(id), gid, { timeout: 60000 });
  check(true, "the deleted group leaves the list");

  // Sign out ends the session.
  await page.getByRole("button", { name: "Sign out" }).click();
  await page.waitForURL(/\/console\/sign-in$/);
  await page.goto(`${BASE}/console/groups`);
  check(page.url().endsWith("/console/sign-in"), "after sign-out the console asks to sign in again");
  check(consoleErrors.length === 0, `no script errors (${consoleErrors.join(" | ")})`);
} catch (e) {
  failed = true;
  console.error(`FAILED: ${e.stack || e}`);
  if (page) await page.screenshot({ path: path.join(SHOTS, "failure.png"), fullPage: true }).catch(() => {});
} finally {
  await browser.close();
}
log(failed ? "failed" : "all checks passed");
process.exit(failed ? 1 : 0);
