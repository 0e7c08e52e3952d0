//! G4's cut of `GET /v1/vaults`: the upstream's list, read whole (at most
//! [`MAX_VAULT_LIST_BYTES`]), keeps only the vaults the token has access bits on.

use http_body_util::BodyExt;
use hyper::body::Incoming;

use crate::verify::Access;

/// The most bytes of `GET /v1/vaults` read to cut it to the token's vaults.
pub const MAX_VAULT_LIST_BYTES: usize = 8 * 1024 * 1024;

/// `GET /v1/vaults` cut to the vaults the token may see: read at most
/// [`MAX_VAULT_LIST_BYTES`], keep the entries whose `id` has access bits.
pub(super) async fn cut_vault_list(
    body: Incoming,
    access: &Access,
) -> Result<Vec<u8>, &'static str> {
    let bytes = http_body_util::Limited::new(body, MAX_VAULT_LIST_BYTES)
        .collect()
        .await
        .map_err(|_| "too large or unreadable")?
        .to_bytes();
    let list: Vec<serde_json::Value> =
        serde_json::from_slice(&bytes).map_err(|_| "not a JSON array")?;
    let kept: Vec<serde_json::Value> = list
        .into_iter()
        .filter(|v| {
            v.get("id")
                .and_then(|id| id.as_str())
                .is_some_and(|id| access.bits(id) != 0)
        })
        .collect();
    serde_json::to_vec(&kept).map_err(|_| "cannot encode")
}
