//! G3: the operation table. A request's method and URI are parsed once, here, into an
//! [`Operation`]: a route of Connect's API with its vault, item and file IDs. Everything after
//! (the access check, the upstream URI, logs, metrics) works from the `Operation`, never from the
//! raw path, and what goes upstream is rebuilt from it.

use percent_encoding::percent_decode_str;

/// The longest path accepted (Connect's longest route is about 150 bytes).
pub const MAX_PATH_BYTES: usize = 1024;
/// The longest query accepted (a `filter` on a title).
pub const MAX_QUERY_BYTES: usize = 2048;

/// Access bits (T2).
pub const VIEW_ITEMS: u32 = 16;
pub const VIEW_AND_COPY_PASSWORDS: u32 = 32;
pub const CREATE_ITEMS: u32 = 64;
pub const EDIT_ITEMS: u32 = 128;
pub const DELETE_ITEMS: u32 = 512;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Route {
    /// Connect's `GET /health`: no token needed (G2).
    Health,
    /// Connect's `GET /heartbeat`: no token needed (G2).
    Heartbeat,
    ListVaults,
    GetVault,
    ListItems,
    CreateItem,
    GetItem,
    ReplaceItem,
    PatchItem,
    DeleteItem,
    ListFiles,
    GetFile,
    GetFileContent,
    /// `GET /v1/activity`: refused (403), it shows every token's requests.
    Activity,
}

impl Route {
    /// The route template, for logs and metrics.
    pub fn template(self) -> &'static str {
        match self {
            Route::Health => "GET /health",
            Route::Heartbeat => "GET /heartbeat",
            Route::ListVaults => "GET /v1/vaults",
            Route::GetVault => "GET /v1/vaults/{v}",
            Route::ListItems => "GET /v1/vaults/{v}/items",
            Route::CreateItem => "POST /v1/vaults/{v}/items",
            Route::GetItem => "GET /v1/vaults/{v}/items/{i}",
            Route::ReplaceItem => "PUT /v1/vaults/{v}/items/{i}",
            Route::PatchItem => "PATCH /v1/vaults/{v}/items/{i}",
            Route::DeleteItem => "DELETE /v1/vaults/{v}/items/{i}",
            Route::ListFiles => "GET /v1/vaults/{v}/items/{i}/files",
            Route::GetFile => "GET /v1/vaults/{v}/items/{i}/files/{f}",
            Route::GetFileContent => "GET /v1/vaults/{v}/items/{i}/files/{f}/content",
            Route::Activity => "GET /v1/activity",
        }
    }

    /// The access bits needed on the vault in the path (SPEC G3); 0 for routes without a vault.
    pub fn needs(self) -> u32 {
        match self {
            Route::Health | Route::Heartbeat | Route::ListVaults | Route::Activity => 0,
            Route::GetVault | Route::ListItems | Route::ListFiles => VIEW_ITEMS,
            Route::GetItem | Route::GetFile | Route::GetFileContent => {
                VIEW_ITEMS | VIEW_AND_COPY_PASSWORDS
            }
            Route::CreateItem => CREATE_ITEMS,
            Route::ReplaceItem | Route::PatchItem => EDIT_ITEMS,
            Route::DeleteItem => DELETE_ITEMS,
        }
    }

    /// Whether a token is needed (all but Connect's own health endpoints).
    pub fn needs_token(self) -> bool {
        !matches!(self, Route::Health | Route::Heartbeat)
    }

    /// The query parameters this route takes (anything else is refused).
    fn query_params(self) -> &'static [&'static str] {
        match self {
            Route::ListVaults | Route::ListItems => &["filter"],
            Route::ListFiles | Route::GetFile => &["inline_files"],
            _ => &[],
        }
    }
}

/// The names of the bits in `bits` (T2).
pub fn bit_names(bits: u32) -> Vec<&'static str> {
    connect_manager_core::access::PERMISSIONS
        .iter()
        .filter(|(bit, _)| i64::from(bits) & bit != 0)
        .map(|(_, name)| *name)
        .collect()
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operation {
    pub route: Route,
    pub vault: Option<String>,
    pub item: Option<String>,
    pub file: Option<String>,
    /// The query, as received (only for routes that take one, and only known parameters).
    pub query: Option<String>,
}

/// Why a request matches no operation. Such a request never reaches the upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Unmatched {
    /// `..`, `.`, `//`, an encoded `/` or `\`, invalid percent-encoding, a control byte: 400.
    #[error("malformed request path")]
    Malformed,
    /// A path or query longer than the limits: 414.
    #[error("request URI too long")]
    TooLong,
    /// A query parameter the route does not take: 400.
    #[error("unsupported query parameter")]
    BadQuery,
    /// Not an operation of the table: 404.
    #[error("not found")]
    NotFound,
}

/// A vault, item or file ID: `^[0-9a-z]{26}$`.
pub fn is_id(s: &str) -> bool {
    s.len() == 26
        && s.bytes()
            .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase())
}

/// Parses `method` and the request target (`path[?query]`) into an operation.
pub fn parse(method: &str, path: &str, query: Option<&str>) -> Result<Operation, Unmatched> {
    if path.len() > MAX_PATH_BYTES || query.is_some_and(|q| q.len() > MAX_QUERY_BYTES) {
        return Err(Unmatched::TooLong);
    }
    let rest = path.strip_prefix('/').ok_or(Unmatched::Malformed)?;
    let mut segments = Vec::new();
    for raw in rest.split('/') {
        let decoded = percent_decode_str(raw)
            .decode_utf8()
            .map_err(|_| Unmatched::Malformed)?;
        if decoded.contains(['/', '\\', '%'])
            || decoded.bytes().any(|b| b.is_ascii_control())
            || decoded == "."
            || decoded == ".."
        {
            return Err(Unmatched::Malformed);
        }
        segments.push(decoded.into_owned());
    }
    // One trailing `/` is the same operation (Connect's JavaScript SDK sends `/v1/vaults/`).
    if segments.len() > 1 && segments.last().is_some_and(String::is_empty) {
        segments.pop();
    }
    if segments.iter().any(String::is_empty) {
        return Err(Unmatched::Malformed);
    }
    let s: Vec<&str> = segments.iter().map(String::as_str).collect();
    let id = |x: &str| is_id(x).then(|| x.to_string()).ok_or(Unmatched::NotFound);
    let (route, vault, item, file) = match (method, s.as_slice()) {
        ("GET", ["health"]) => (Route::Health, None, None, None),
        ("GET", ["heartbeat"]) => (Route::Heartbeat, None, None, None),
        ("GET", ["v1", "activity"]) => (Route::Activity, None, None, None),
        ("GET", ["v1", "vaults"]) => (Route::ListVaults, None, None, None),
        ("GET", ["v1", "vaults", v]) => (Route::GetVault, Some(id(v)?), None, None),
        (m, ["v1", "vaults", v, "items"]) => {
            let route = match m {
                "GET" => Route::ListItems,
                "POST" => Route::CreateItem,
                _ => return Err(Unmatched::NotFound),
            };
            (route, Some(id(v)?), None, None)
        }
        (m, ["v1", "vaults", v, "items", i]) => {
            let route = match m {
                "GET" => Route::GetItem,
                "PUT" => Route::ReplaceItem,
                "PATCH" => Route::PatchItem,
                "DELETE" => Route::DeleteItem,
                _ => return Err(Unmatched::NotFound),
            };
            (route, Some(id(v)?), Some(id(i)?), None)
        }
        ("GET", ["v1", "vaults", v, "items", i, "files"]) => {
            (Route::ListFiles, Some(id(v)?), Some(id(i)?), None)
        }
        ("GET", ["v1", "vaults", v, "items", i, "files", f]) => {
            (Route::GetFile, Some(id(v)?), Some(id(i)?), Some(id(f)?))
        }
        ("GET", ["v1", "vaults", v, "items", i, "files", f, "content"]) => (
            Route::GetFileContent,
            Some(id(v)?),
            Some(id(i)?),
            Some(id(f)?),
        ),
        _ => return Err(Unmatched::NotFound),
    };
    let query = match query {
        None | Some("") => None,
        Some(q) => {
            let allowed = route.query_params();
            for pair in q.split('&') {
                let name = pair.split_once('=').map_or(pair, |(n, _)| n);
                let name = percent_decode_str(name)
                    .decode_utf8()
                    .map_err(|_| Unmatched::BadQuery)?;
                if !allowed.contains(&name.as_ref()) {
                    return Err(Unmatched::BadQuery);
                }
            }
            if q.bytes()
                .any(|b| b.is_ascii_control() || b == b' ' || b == b'#')
            {
                return Err(Unmatched::BadQuery);
            }
            Some(q.to_string())
        }
    };
    Ok(Operation {
        route,
        vault,
        item,
        file,
        query,
    })
}

impl Operation {
    /// The path and query sent upstream, rebuilt from the parsed operation (canonical: no
    /// trailing `/`, no percent-encoding in the path).
    pub fn upstream_path_and_query(&self) -> String {
        let mut p = match self.route {
            Route::Health => "/health".to_string(),
            Route::Heartbeat => "/heartbeat".to_string(),
            Route::Activity => "/v1/activity".to_string(),
            Route::ListVaults => "/v1/vaults".to_string(),
            _ => {
                let mut p = format!("/v1/vaults/{}", self.vault.as_deref().unwrap_or_default());
                match self.route {
                    Route::GetVault => {}
                    Route::ListItems | Route::CreateItem => p.push_str("/items"),
                    _ => {
                        p.push_str("/items/");
                        p.push_str(self.item.as_deref().unwrap_or_default());
                        match self.route {
                            Route::ListFiles => p.push_str("/files"),
                            Route::GetFile | Route::GetFileContent => {
                                p.push_str("/files/");
                                p.push_str(self.file.as_deref().unwrap_or_default());
                                if self.route == Route::GetFileContent {
                                    p.push_str("/content");
                                }
                            }
                            _ => {}
                        }
                    }
                }
                p
            }
        };
        if let Some(q) = &self.query {
            p.push('?');
            p.push_str(q);
        }
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const V: &str = "abcdefghijklmnopqrstuvwxyz";
    const I: &str = "0123456789abcdefghijklmnop";
    const F: &str = "zyxwvutsrqponmlkjihgfedcba";

    fn p(method: &str, target: &str) -> Result<Operation, Unmatched> {
        let (path, query) = match target.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (target, None),
        };
        parse(method, path, query)
    }

    #[test]
    fn g3_every_table_row_parses_with_its_bits_and_ids() {
        let rows: Vec<(&str, String, Route, u32)> = vec![
            ("GET", "/v1/vaults".into(), Route::ListVaults, 0),
            ("GET", format!("/v1/vaults/{V}"), Route::GetVault, 16),
            ("GET", format!("/v1/vaults/{V}/items"), Route::ListItems, 16),
            (
                "GET",
                format!("/v1/vaults/{V}/items/{I}/files"),
                Route::ListFiles,
                16,
            ),
            (
                "GET",
                format!("/v1/vaults/{V}/items/{I}"),
                Route::GetItem,
                48,
            ),
            (
                "GET",
                format!("/v1/vaults/{V}/items/{I}/files/{F}"),
                Route::GetFile,
                48,
            ),
            (
                "GET",
                format!("/v1/vaults/{V}/items/{I}/files/{F}/content"),
                Route::GetFileContent,
                48,
            ),
            (
                "POST",
                format!("/v1/vaults/{V}/items"),
                Route::CreateItem,
                64,
            ),
            (
                "PUT",
                format!("/v1/vaults/{V}/items/{I}"),
                Route::ReplaceItem,
                128,
            ),
            (
                "PATCH",
                format!("/v1/vaults/{V}/items/{I}"),
                Route::PatchItem,
                128,
            ),
            (
                "DELETE",
                format!("/v1/vaults/{V}/items/{I}"),
                Route::DeleteItem,
                512,
            ),
            ("GET", "/v1/activity".into(), Route::Activity, 0),
            ("GET", "/health".into(), Route::Health, 0),
            ("GET", "/heartbeat".into(), Route::Heartbeat, 0),
        ];
        for (method, path, route, bits) in rows {
            let op = p(method, &path).unwrap_or_else(|e| panic!("{method} {path}: {e}"));
            assert_eq!(op.route, route, "{method} {path}");
            assert_eq!(route.needs(), bits, "{method} {path}");
            assert_eq!(op.upstream_path_and_query(), path);
            if path.starts_with("/v1/vaults/") {
                assert_eq!(op.vault.as_deref(), Some(V));
            }
        }
    }

    #[test]
    fn g3_one_trailing_slash_is_the_same_operation_two_are_refused() {
        assert_eq!(p("GET", "/v1/vaults/").unwrap().route, Route::ListVaults);
        let op = p("GET", &format!("/v1/vaults/{V}/items/")).unwrap();
        assert_eq!(op.route, Route::ListItems);
        assert_eq!(
            op.upstream_path_and_query(),
            format!("/v1/vaults/{V}/items")
        );
        assert_eq!(p("GET", "/v1/vaults//"), Err(Unmatched::Malformed));
    }

    #[test]
    fn g3_filter_passes_on_lists_and_unknown_query_parameters_are_refused() {
        let op = p("GET", "/v1/vaults?filter=name%20eq%20%22Prod%22").unwrap();
        assert_eq!(
            op.upstream_path_and_query(),
            "/v1/vaults?filter=name%20eq%20%22Prod%22"
        );
        assert!(
            p(
                "GET",
                &format!("/v1/vaults/{V}/items?filter=title%20eq%20%22x%22")
            )
            .is_ok()
        );
        assert!(
            p(
                "GET",
                &format!("/v1/vaults/{V}/items/{I}/files?inline_files=true")
            )
            .is_ok()
        );
        assert_eq!(p("GET", "/v1/vaults?x=1"), Err(Unmatched::BadQuery));
        assert_eq!(
            p("GET", &format!("/v1/vaults/{V}?filter=x")),
            Err(Unmatched::BadQuery)
        );
    }

    #[test]
    fn g3_hostile_paths_are_refused() {
        for (target, why) in [
            (format!("/v1/vaults/{V}/../{V}"), Unmatched::Malformed),
            (
                format!("/v1/vaults/{V}/items/%2e%2e/x"),
                Unmatched::Malformed,
            ),
            (format!("/v1/vaults/{V}/items/%2E%2E"), Unmatched::Malformed),
            (format!("/v1/vaults/{V}%2Fitems"), Unmatched::Malformed),
            (format!("/v1/vaults/{V}%2fitems"), Unmatched::Malformed),
            (format!("/v1/vaults/{V}%5Citems"), Unmatched::Malformed),
            (format!("/v1//vaults/{V}"), Unmatched::Malformed),
            (format!("//v1/vaults/{V}"), Unmatched::Malformed),
            (format!("/v1/./vaults/{V}"), Unmatched::Malformed),
            (format!("/v1/vaults/{V}%00"), Unmatched::Malformed),
            (format!("/v1/vaults/{V}%ff"), Unmatched::Malformed),
            (format!("/v1/vaults/{V}%252F"), Unmatched::Malformed),
            (
                format!("/v1/vaults/{}", V.to_uppercase()),
                Unmatched::NotFound,
            ),
            (format!("/v1/vaults/{V}x"), Unmatched::NotFound),
            (
                format!("/v1/vaults/{V}/items/{I}/files/{F}/content/x"),
                Unmatched::NotFound,
            ),
            ("/v1/vault".into(), Unmatched::NotFound),
            ("/V1/vaults".into(), Unmatched::NotFound),
            ("/__standin/requests".into(), Unmatched::NotFound),
            (
                format!("/v1/vaults/{}", "a".repeat(2000)),
                Unmatched::TooLong,
            ),
            ("v1/vaults".into(), Unmatched::Malformed),
        ] {
            assert_eq!(p("GET", &target), Err(why), "{target}");
        }
        assert_eq!(
            p("GET", &format!("/v1/vaults?filter={}", "a".repeat(3000))),
            Err(Unmatched::TooLong)
        );
    }

    #[test]
    fn g3_percent_encoded_ids_are_matched_decoded_once() {
        // `%61` is `a`: the ID is matched decoded, and what goes upstream is the decoded form.
        let op = p("GET", &format!("/v1/vaults/%61{}", &V[1..])).unwrap();
        assert_eq!(op.vault.as_deref(), Some(V));
        assert_eq!(op.upstream_path_and_query(), format!("/v1/vaults/{V}"));
    }

    #[test]
    fn g3_methods_outside_the_table_are_not_found() {
        for (m, path) in [
            ("POST", "/v1/vaults".to_string()),
            ("DELETE", format!("/v1/vaults/{V}")),
            ("HEAD", "/v1/vaults".to_string()),
            ("OPTIONS", format!("/v1/vaults/{V}/items")),
            ("PUT", format!("/v1/vaults/{V}/items")),
            ("POST", format!("/v1/vaults/{V}/items/{I}")),
            ("POST", "/v1/activity".to_string()),
            ("DELETE", format!("/v1/vaults/{V}/items/{I}/files/{F}")),
        ] {
            assert_eq!(p(m, &path), Err(Unmatched::NotFound), "{m} {path}");
        }
    }

    #[test]
    fn g3_bit_names_name_each_bit() {
        assert_eq!(bit_names(48), vec!["view_items", "view_and_copy_passwords"]);
        assert_eq!(bit_names(512), vec!["delete_items"]);
    }
}
