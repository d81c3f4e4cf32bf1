//! Who may call (SPEC §4): 401 for missing, malformed, foreign-signed or stale credentials and
//! unknown or deleted users; Basic and X-ORG-ID rules; another org's path acts with the role there;
//! an unknown org is 404 only after authentication.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use reqwest::StatusCode;
use serde_json::json;

use crate::backend_tests;
use crate::helpers::*;

backend_tests!(
    requests_without_valid_credentials_get_401,
    tokens_of_deleted_or_unknown_users_get_401,
    basic_auth_needs_the_username_of_the_token,
    x_org_id_must_name_the_tokens_org,
    a_token_on_another_orgs_path_acts_with_its_role_there,
    an_unknown_org_is_404_after_authentication,
);

/// A token with exactly `header` (an empty object: the HS256 header simtest issues) and `claims`,
/// its signature an HMAC-SHA256 of them made with `secret`, whatever the header claims: what an
/// attacker holding (or guessing) the secret could send.
fn forge(
    app: &TestApp,
    header: serde_json::Value,
    claims: serde_json::Value,
    secret: &[u8],
) -> String {
    let _ = app;
    let header = match header.as_object() {
        Some(h) if h.is_empty() => json!({"alg": "HS256", "typ": "JWT"}),
        _ => header,
    };
    let key = jsonwebtoken::EncodingKey::from_secret(secret).unwrap();
    sign(&header, &claims, &key, jsonwebtoken::Algorithm::HS256)
}

/// `header.claims.signature`, the signature made with `key` by `algorithm`.
fn sign(
    header: &serde_json::Value,
    claims: &serde_json::Value,
    key: &jsonwebtoken::EncodingKey,
    algorithm: jsonwebtoken::Algorithm,
) -> String {
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let signature = jsonwebtoken::crypto::sign(input.as_bytes(), key, algorithm).unwrap();
    format!("{input}.{signature}")
}

/// A 2048-bit RSA private key (PKCS#1 DER, base64) made for this test only: an attacker's own key.
const ATTACKER_RSA_KEY: &str = "MIIEogIBAAKCAQEAuBMR/kSz6tXc28ghe0XUMwYd0ib0YVDono5mf8w0Gh7Mc6h+XsMWB9xFKuomLGk9pbLzFTNl\
    UfKrVy5zkTaB2vZS4m2tdJgLF5r1kaL5CPq9sA8fAMGGrjQ1DQXYc1ohvUW7ssn0a/T2BBkSrcWHIJTA9QAXWfLF\
    1j8QfrRknZCrfMCY5aIuYkcDcWPdXoU+MjGL61VHpw7XSaP2eeYcN9RPhtvzHIwdQrxIFcL9Dhf/V2DcHJLH5hYV\
    fqc0upenaqJWrAR7+/fZVVs81Gy0nkKj2PzQ6qmQnbJMD/K4USL94XJRdhoMQF5tfBia8Jq1GR4u4yu3K+VnirVH\
    O1k0HQIDAQABAoIBABE0ichYHZpZS7UopfstZ2HZiYIHbWzchicD17rMQyEfOIGlrHd+XpnKJ0Dqn+TOIBqpI6Vw\
    p2DF1j67iHEjRMygR4EDOrpHgonooa7E1T2B9PxMKDFcOr11Axxo1nbPDuZFFVU8dox8r14UsIqY3ZeDBUIhNGLj\
    mUWm9rYRIHJwVpjCPH8wRZigH+uT/yV3Bh4s8Waja0i2F5eV7x9RxZfHXX2zkNA0/7v03p9X3f2DDYk5WqUqa0MU\
    ehww2FojNRhIhLYDAsEzOPfb8IsoZBqED8c2ZKDXcXKc3aFVlz7Pm3QbT1Aej2VOboSyhr58HN1oQ88FZh45hFm4\
    4U2seZUCgYEA+zYuqq77+Xa0Jdy7rJHlqF1nUKAcpWHNKp1XIcFFrVZXsmUG8/lZYt+lIWxBTIJO5lkeH47zodZ9\
    vVyubTLWGtI55zFRlJtfmlXqTPRKvwnOv/jydhsxU4IDd0f8zkvQhVry7QxUZxCTAXZoi1TP6M38EiokvatdQ0+6\
    DJaj3FsCgYEAu5VIuq5OvxKld79fChTKOttj9T266iyR6kl4KredO5f9zrjHswt/EcZR1/zqZ6VjTkeRPXjHbn4L\
    8fd4yqM0GoMjbJn03ECDidQtUNBBMcNrVqaR9d/c41oUCisNeWPjZGhnX13IgeDp5SuFX5/oW5aaYPTELBlrfYrg\
    d7SOeucCgYB6Pv+up8COwSkhU60waT8tE2b3YTMPd+xzVGXWU0so8t9yPJ+JkknhR5wAC8IrDS6AAdYa3WHJ26sM\
    v1FSam6uVqc+zk041/NKE40VLbxCAu/Nk8PJnan/TUGKhkmLynEKtBuLJ3jbPsGK8KgnRXp3e+WyoTeH5SBZZS7Q\
    eW38CQKBgAldgqwPV88iVzCLVWtjblVR7sOnuVVHtGFGGcHIOQlopTtU7mN6B3YTuLJX5jwWfcbCu/WduhdCI8aI\
    3HcBfvBz66jYZuk4L1kKRtjqDNc3Mny5BECKVLTlImr/i0SsQAYbUE3qmMAjQoo2igokKa2o7zw3/DNXcY5rCJnx\
    YcuxAoGATCL+J68gBNri3F3ZuZmyOM3m6OTsTTy1NtwrnBJBa2gBJMIGSn/hgKz0g9/F7BG752noI3upPx2gfzy6\
    dMHjs2xPkRiaQovLD4B2bun6vnbfugeuHoTgkhZ7kfOP7fAovvy36ohBH+nVayWJ5mJagAUIXq0KNAfsiMZsEsgJ\
    5MM=";

/// A real RS256 token: signed with an RSA key, as a server accepting RS256 would verify it.
fn rs256(claims: &serde_json::Value) -> String {
    let der = STANDARD.decode(ATTACKER_RSA_KEY).unwrap();
    let key = jsonwebtoken::EncodingKey::from_rsa_der(&der);
    sign(
        &json!({"alg": "RS256", "typ": "JWT"}),
        claims,
        &key,
        jsonwebtoken::Algorithm::RS256,
    )
}

fn claims(org: &str, user: &str, iat: i64, exp: i64, iss: &str) -> serde_json::Value {
    json!({"sub": user, "org_id": org, "iat": iat, "exp": exp, "iss": iss})
}

async fn assert_401(app: &TestApp, auth: Option<String>, reason: &str) {
    let mut request = app.client.get(app.url("/v1/acme/simulation/unit_test/"));
    if let Some(value) = auth {
        request = request.header("authorization", value);
    }
    let response = request.send().await.unwrap();
    assert_eq!(
        response
            .headers()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap()),
        Some("Bearer"),
        "{reason}"
    );
    let body = assert_error(response, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    assert_eq!(
        body["detail"], "Invalid authorization credentials.",
        "{reason}: the reason is not told"
    );
}

async fn requests_without_valid_credentials_get_401(app: TestApp) {
    let now = chrono::Utc::now().timestamp();
    let good = app.admin_token();
    let parts: Vec<&str> = good.split('.').collect();
    let none_header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let secret = app.state_secret();
    let valid = claims("acme", "alice", now, now + 600, "simtest");
    // A forged HS256 token with the right secret is accepted (checked below): so each refusal of
    // the alg cases comes from the algorithm, not from a broken forgery.
    let control = forge(&app, json!({}), valid.clone(), &secret);
    // "none" with a real signature segment (an HMAC with the server's secret over the "none"
    // header): a server that ignored the header's alg would accept it.
    let none_signed = forge(
        &app,
        json!({"alg": "none", "typ": "JWT"}),
        valid.clone(),
        &secret,
    );
    // RS256/HS256 confusion: the header says RS256, the signature is an HMAC with the server's
    // secret over that very header. Refused because only HS256 is accepted.
    let rs256_confused = forge(
        &app,
        json!({"alg": "RS256", "typ": "JWT"}),
        valid.clone(),
        &secret,
    );
    // A true RS256 token, signed with an RSA key.
    let rs256_signed = rs256(&valid);
    let tampered_payload = URL_SAFE_NO_PAD.encode(
        String::from_utf8(URL_SAFE_NO_PAD.decode(parts[1]).unwrap())
            .unwrap()
            .replace("alice", "bobby"),
    );
    let other_secret = forge(
        &app,
        json!({}),
        claims("acme", "alice", now, now + 600, "simtest"),
        &[9u8; 32],
    );
    let expired = forge(
        &app,
        json!({}),
        claims("acme", "alice", now - 7200, now - 3600, "simtest"),
        &secret,
    );
    let foreign_issuer = forge(
        &app,
        json!({}),
        claims("acme", "alice", now, now + 600, "someone-else"),
        &secret,
    );
    let future = forge(
        &app,
        json!({}),
        json!({"sub": "alice", "org_id": "acme", "iat": now, "exp": now + 600, "iss": "simtest", "nbf": now + 3600}),
        &secret,
    );
    let no_org = forge(
        &app,
        json!({}),
        json!({"sub": "alice", "iat": now, "exp": now + 600, "iss": "simtest"}),
        &secret,
    );
    let cases: Vec<(Option<String>, &str)> = vec![
        (None, "no header"),
        (Some("Bearer".into()), "empty bearer"),
        (Some("Bearer not.a.jwt".into()), "garbage"),
        (Some(format!("Token {good}")), "unknown scheme"),
        (
            Some(format!("Bearer {none_header}.{}.", parts[1])),
            "alg none",
        ),
        (
            Some(format!("Bearer {none_signed}")),
            "alg none with a real signature",
        ),
        (
            Some(format!("Bearer {rs256_confused}")),
            "RS256 header, HMAC signature with the server's secret",
        ),
        (
            Some(format!("Bearer {rs256_signed}")),
            "RS256 token signed with an RSA key",
        ),
        (
            Some(format!(
                "Bearer {}.{tampered_payload}.{}",
                parts[0], parts[2]
            )),
            "tampered payload",
        ),
        (
            Some(format!("Bearer {other_secret}")),
            "signed with another secret",
        ),
        (Some(format!("Bearer {expired}")), "expired"),
        (Some(format!("Bearer {foreign_issuer}")), "wrong issuer"),
        (Some(format!("Bearer {future}")), "not yet valid"),
        (Some(format!("Bearer {no_org}")), "no org claim"),
    ];
    for (auth, reason) in cases {
        assert_401(&app, auth, reason).await;
    }
    let forged = app
        .client
        .get(app.url("/v1/acme/simulation/unit_test/"))
        .bearer_auth(&control)
        .send()
        .await
        .unwrap();
    assert_eq!(
        forged.status(),
        StatusCode::OK,
        "the forge makes valid HS256 tokens"
    );
    let ok = app
        .client
        .get(app.url("/v1/acme/simulation/unit_test/"))
        .bearer_auth(&good)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
}

trait Secret {
    fn state_secret(&self) -> Vec<u8>;
}

impl Secret for TestApp {
    /// The secret the test server signs with (generated into its data dir).
    fn state_secret(&self) -> Vec<u8> {
        TEST_TOKEN_SECRET.as_bytes().to_vec()
    }
}

async fn tokens_of_deleted_or_unknown_users_get_401(app: TestApp) {
    for (org, user, reason) in [
        ("acme", "dora", "deleted user"),
        ("acme", "mallory", "unknown user"),
        ("initech", "alice", "unknown org"),
    ] {
        assert_401(
            &app,
            Some(format!("Bearer {}", app.token(org, user))),
            reason,
        )
        .await;
    }
}

async fn basic_auth_needs_the_username_of_the_token(app: TestApp) {
    let token = app.admin_token();
    let basic = |user: &str| format!("Basic {}", STANDARD.encode(format!("{user}:{token}")));
    let ok = app
        .client
        .get(app.url("/v1/acme/simulation/unit_test/"))
        .header("authorization", basic("acme_alice"))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    for (user, reason) in [
        ("acme_bob", "another user"),
        ("globex_alice", "another org"),
        ("alice", "no org"),
        ("", "empty"),
    ] {
        assert_401(&app, Some(basic(user)), reason).await;
    }
    assert_401(&app, Some("Basic !!!".into()), "not base64").await;
    assert_401(
        &app,
        Some(format!("Basic {}", STANDARD.encode("acme_alice"))),
        "no password",
    )
    .await;
}

async fn x_org_id_must_name_the_tokens_org(app: TestApp) {
    let token = app.admin_token();
    let list = |org_header: &'static str| {
        app.client
            .get(app.url("/v1/acme/simulation/unit_test/"))
            .bearer_auth(&token)
            .header("x-org-id", org_header)
            .send()
    };
    assert_eq!(list("acme").await.unwrap().status(), StatusCode::OK);
    assert_eq!(
        list("globex").await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
}

async fn a_token_on_another_orgs_path_acts_with_its_role_there(app: TestApp) {
    let gary = app.token("globex", "gary");
    let created = app
        .create_as(&gary, "globex", &globex_unit_test_body("Globex test"))
        .await;
    assert_eq!(created.status(), StatusCode::CREATED);

    // globex grants acme's alice the viewer role (a record naming acme as her home org): she reads
    // there and may not write there.
    let alice = app.admin_token();
    let response = app
        .client
        .get(app.url("/v1/globex/simulation/unit_test/"))
        .bearer_auth(&alice)
        .header("x-org-id", "acme")
        .send()
        .await
        .unwrap();
    let (status, page) = status_and_json(response).await;
    assert_eq!(
        (status, names(&page)),
        (StatusCode::OK, vec!["Globex test".to_owned()])
    );
    assert_eq!(
        app.create_as(&alice, "globex", &globex_unit_test_body("Nope"))
            .await
            .status(),
        StatusCode::FORBIDDEN
    );

    // gary has no record in acme: an empty list and 403 on writes.
    app.create_ok(&unit_test_body("Acme test")).await;
    let (status, page) = status_and_json(app.list_as(&gary, "acme", "").await).await;
    assert_eq!(
        (status, page["simulation_unit_tests"].clone()),
        (StatusCode::OK, json!([]))
    );
    assert_eq!(
        app.create_as(&gary, "acme", &unit_test_body("Intruder"))
            .await
            .status(),
        StatusCode::FORBIDDEN
    );
    let (_, page) = status_and_json(app.search_as(&gary, "acme", "query=acme").await).await;
    assert_eq!(page["simulation_unit_tests"], json!([]));
}

async fn an_unknown_org_is_404_after_authentication(app: TestApp) {
    let alice = app.admin_token();
    assert_error(
        app.list_as(&alice, "initech", "").await,
        StatusCode::NOT_FOUND,
        "organization_not_found",
    )
    .await;
    assert_error(
        app.search_as(&alice, "initech", "query=x").await,
        StatusCode::NOT_FOUND,
        "organization_not_found",
    )
    .await;
    assert_error(
        app.delete_as(&alice, "initech", UNKNOWN_ID).await,
        StatusCode::NOT_FOUND,
        "organization_not_found",
    )
    .await;
    // Without credentials the answer is 401, whatever the org.
    let anonymous = app
        .client
        .get(app.url("/v1/initech/simulation/unit_test/"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
}
