//! `/docs` in a real headless browser (Debian's chromium, driven by `tests/browser/docs.mjs`): the
//! operations render, "Authorize" + "Try it out" on list answers 200, and no request leaves the
//! server.

use std::path::{Path, PathBuf};

use simtest::ratelimit::Limited;

use crate::helpers::*;

/// Where the browser is (`CHROMIUM` overrides, as in the script).
fn chromium() -> PathBuf {
    std::env::var_os("CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"))
}

/// What the browser check needs that is missing on this machine, if anything.
fn missing_prerequisite(browser_dir: &Path) -> Option<String> {
    if !chromium().exists() {
        return Some(format!("no browser at {}", chromium().display()));
    }
    let node = std::process::Command::new("node").arg("--version").output();
    if !node.is_ok_and(|o| o.status.success()) {
        return Some("no `node` on PATH".to_owned());
    }
    if !browser_dir.join("node_modules/playwright-core").exists() {
        return Some(format!(
            "playwright-core is not installed (npm ci --prefix {})",
            browser_dir.display()
        ));
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swagger_ui_renders_the_operations_and_try_it_out_lists_with_a_token() {
    let browser_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    if let Some(missing) = missing_prerequisite(&browser_dir) {
        say_skipped(&format!(
            "the headless-browser check of /docs: {missing} (.ci/run installs chromium and runs it)"
        ));
        return;
    }
    // Budgets other than the defaults, so the page shows the configured ones.
    let app = spawn_app_with(Backend::Embedded, |config| {
        config.rate_limits.set(Limited::ListUnitTests, 77);
        config.http.max_body_bytes = 64 * 1024;
    })
    .await;
    app.create_ok(&unit_test_body("Seen in the browser")).await;

    let output = tokio::process::Command::new("node")
        .arg(browser_dir.join("docs.mjs"))
        .arg(app.url(""))
        .arg(app.admin_token())
        .arg("acme")
        .args([
            "The user has exceeded the rate limit of 77 requests per minute",
            "larger than this server's limit of 64 KiB (65536 bytes)",
        ])
        .output()
        .await
        .expect("run node");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    // The test harness shows this when the test fails, and with --nocapture (CI checks the OK line).
    println!("{stdout}{stderr}");
    assert!(output.status.success(), "the browser check failed");
    assert!(
        stdout.contains("answered 200 with 1 unit tests"),
        "the page listed the created unit test: {stdout}"
    );
}
