// Drives the approvals page in headless Chromium for tests/approvals_page_in_a_browser.rs.
// Usage: node approve.mjs BASE_URL TOKEN SCREENSHOT.png
// Speaks one JSON object per line on stdout: {"ready":true} once the empty queue shows,
// then {"seen": {...}} with what the page showed for the first request, then
// {"done": "..."} after clicking Approve. Reads nothing; exits 1 on any failure.
import { chromium } from "playwright-core";

const [base, token, screenshot] = process.argv.slice(2);
const say = (o) => process.stdout.write(JSON.stringify(o) + "\n");

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
  ],
});
try {
  const page = await browser.newPage();
  page.setDefaultTimeout(20000);
  await page.goto(`${base}/#token=${token}`);
  await page.locator("#empty").waitFor({ state: "visible" });
  const identity = await page.locator("#identity").textContent();
  say({ ready: true, identity, url: page.url() });

  // The request appears without a reload: the page refreshes by itself.
  const card = page.locator("article.request").first();
  await card.waitFor({ state: "visible" });
  const text = async (sel) => (await card.locator(sel).textContent()) ?? "";
  const seen = {
    tool: await text(".tool"),
    tier: await text(".tier"),
    agent: await text(".agent"),
    principal: await text(".principal"),
    intent: await text(".intent"),
    args: await text(".args"),
    escapes: await card.locator(".esc").count(),
    left: await text(".left"),
  };
  say({ seen });
  await card.locator(".comment").fill("checked with the customer");
  await page.screenshot({ path: screenshot, fullPage: true });
  await card.locator("button.approve").click();
  await page.locator("#status").filter({ hasText: "Approved" }).waitFor();
  await page.locator("#empty").waitFor({ state: "visible" });
  say({ done: await page.locator("#status").textContent() });
} catch (e) {
  process.stderr.write(String(e?.stack ?? e) + "\n");
  process.exitCode = 1;
} finally {
  await browser.close();
}
