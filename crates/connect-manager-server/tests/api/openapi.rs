//! `openapi.yaml` is generated from the code; the committed file must match.

#[test]
fn openapi_yaml_matches_the_code() {
    let generated = connect_manager_server::openapi::generate_yaml();
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../openapi.yaml");
    if std::env::var("UPDATE_OPENAPI").is_ok_and(|v| v == "1") {
        std::fs::write(path, &generated).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(path).unwrap();
    assert!(
        committed == generated,
        "openapi.yaml is stale: run `UPDATE_OPENAPI=1 cargo test -p connect-manager-server openapi` \
         (or `connect-manager openapi > openapi.yaml`) and commit it"
    );
}

#[test]
fn every_operation_documents_security_and_errors() {
    let (_, api) = connect_manager_server::openapi::split();
    let public = [
        "/healthz",
        "/readyz",
        "/openapi.yaml",
        "/.well-known/jwks.json",
        "/metrics",
        // No credential but the subject token in its form (RFC 8693): no security scheme, no
        // 401 (refusals are RFC 6749 400s).
        "/v1/token-exchange",
    ];
    let mut operations = 0;
    for (path, item) in &api.paths.paths {
        let ops = [&item.get, &item.post, &item.put, &item.patch, &item.delete];
        for op in ops.into_iter().flatten() {
            operations += 1;
            let codes: Vec<_> = op.responses.responses.keys().cloned().collect();
            for (code, response) in &op.responses.responses {
                // OpenAPI 3.1 requires a description on every response.
                let described = match response {
                    utoipa::openapi::RefOr::T(r) => !r.description.is_empty(),
                    utoipa::openapi::RefOr::Ref(_) => true,
                };
                assert!(described, "{path} {code}: no description");
            }
            if public.contains(&path.as_str()) {
                continue;
            }
            assert!(
                op.security.as_ref().is_some_and(|s| !s.is_empty()),
                "{path}: no security"
            );
            assert!(
                codes.iter().any(|c| c == "401"),
                "{path}: no 401 documented"
            );
            // Failed authentication is rate limited before credentials are read (A5).
            assert!(
                codes.iter().any(|c| c == "429"),
                "{path}: no 429 documented"
            );
            assert!(
                codes.iter().any(|c| c.starts_with('2')),
                "{path}: no success documented"
            );
        }
    }
    assert!(operations >= 35, "{operations} operations");
}
