// Opens a running simtest's /docs in headless chromium (Debian's, through playwright-core) and
// checks what a user coming from FastAPI does: the operations are listed; "Authorize" takes a
// bearer token; "Try it out" + "Execute" on the list operation answers 200. Every request the page
// makes is recorded: one to a host other than the server's fails the check (and is not sent).
//
// Usage: node docs.mjs BASE_URL TOKEN ORG [EXPECTED_TEXT...]
// (EXPECTED_TEXT: strings the rendered page must show, e.g. the configured rate limit.)
// Exit 0 and a last line `OK ...` when every check holds; exit 1 and `FAILED: ...` otherwise.
// CHROMIUM overrides the browser binary (default /usr/bin/chromium).

import { chromium } from "playwright-core";

const [base, token, org, ...expectedTexts] = process.argv.slice(2);
if (!base || !token || !org) {
  console.error("usage: node docs.mjs BASE_URL TOKEN ORG [EXPECTED_TEXT...]");
  process.exit(2);
}
const origin = new URL(base).origin;
const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";
const LIST_OPERATION = "get-simulation-unit-tests";
const OPERATIONS = [
  "create-simulation-unit-test",
  "get-simulation-unit-tests",
  "search-simulation-unit-tests",
  "update-simulation-unit-test",
  "delete-simulation-unit-test",
  "sign-in-with-api-key",
];
const TIMEOUT_MS = 20_000;

const requested = [];
const elsewhere = [];
const pageErrors = [];

function fail(message) {
  throw new Error(message);
}

async function run(browser) {
  const context = await browser.newContext();
  context.setDefaultTimeout(TIMEOUT_MS);
  // Every request passes here; anything not for the server is recorded and refused.
  await context.route("**/*", (route) => {
    const url = route.request().url();
    requested.push(url);
    if (new URL(url).origin === origin) {
      return route.continue();
    }
    elsewhere.push(url);
    return route.abort();
  });
  const page = await context.newPage();
  page.on("pageerror", (e) => pageErrors.push(String(e)));
  page.on("websocket", (ws) => elsewhere.push(ws.url()));

  await page.goto(`${base}/docs`);
  await page.locator(".opblock").first().waitFor();
  const shown = await page.locator(".opblock-summary-operation-id").allTextContents();
  const missing = OPERATIONS.filter((id) => !shown.includes(id));
  if (missing.length > 0) fail(`operations not rendered: ${missing.join(", ")}; shown: ${shown}`);
  for (const text of expectedTexts) {
    const found = await page.evaluate(
      async (t) => JSON.stringify(await (await fetch("/openapi.json")).json()).includes(t),
      text,
    );
    if (!found) fail(`the document the page loaded does not say ${JSON.stringify(text)}`);
  }

  // Authorize: the bearer scheme takes the token.
  await page.locator("button.authorize").first().click();
  const bearer = page.locator(".auth-container", { hasText: "Bearer-Authorization (http, Bearer)" });
  await bearer.locator("input").first().fill(token);
  await bearer.locator("button.authorize").click();
  await bearer.getByText("Authorized").first().waitFor();
  await page.locator("button.btn-done").first().click();

  // Try it out + Execute on the list operation.
  const op = page.locator(`#operations-Simulation-${LIST_OPERATION}`);
  await op.locator(".opblock-summary").first().click();
  await op.locator("button.try-out__btn").click();
  await op.locator('tr[data-param-name="organization"] input').fill(org);
  const answered = page.waitForResponse(
    (r) => r.url().startsWith(`${origin}/v1/${org}/simulation/unit_test`) && r.request().method() === "GET",
  );
  await op.locator("button.execute").click();
  const response = await answered;
  const auth = await response.request().headerValue("authorization");
  if (auth !== `Bearer ${token}`) fail(`the list request carried Authorization: ${auth}`);
  if (response.status() !== 200) fail(`the list request answered ${response.status()}: ${await response.text()}`);
  const body = await response.json();
  if (!Array.isArray(body.simulation_unit_tests)) fail(`unexpected list body: ${JSON.stringify(body)}`);
  // The page shows the status it got.
  const status = op.locator(".live-responses-table tbody .response-col_status").first();
  await status.waitFor();
  const statusText = (await status.textContent()).trim();
  if (statusText !== "200") fail(`the page shows status ${statusText}`);

  await context.close();
  return { units: body.simulation_unit_tests.length };
}

let browser;
try {
  browser = await chromium.launch({
    executablePath,
    headless: true,
    // Root in CI containers: chromium's sandbox needs user namespaces it may not get.
    args: ["--no-sandbox", "--disable-dev-shm-usage"],
  });
  const { units } = await run(browser);
  if (elsewhere.length > 0) fail(`requests to other hosts: ${elsewhere.join(", ")}`);
  if (pageErrors.length > 0) fail(`page errors: ${pageErrors.join("; ")}`);
  console.log(
    `OK: ${OPERATIONS.length} operations rendered; Try it out on ${LIST_OPERATION} answered 200 ` +
      `with ${units} unit tests; ${requested.length} requests, all to ${origin}`,
  );
  await browser.close();
} catch (e) {
  console.log(`requests made: ${requested.join("\n  ")}`);
  console.log(`FAILED: ${e.message}`);
  if (browser) await browser.close();
  process.exit(1);
}
