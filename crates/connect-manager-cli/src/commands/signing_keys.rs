//! `signing-key list|rotate|retire` (owners, T3) over the HTTP API. The API has no list of
//! signing keys: `list` reads the published JWKS (`GET /.well-known/jwks.json`), which holds the
//! key that signs and every older key still verifying a live token; a key that verifies no live
//! token is not published, and so not listed. `rotate` is `POST /v1/keys/rotate`, `retire` is
//! `POST /v1/keys/{kid}/retire` (the key that signs is refused: rotate first).

use clap::Subcommand;
use connect_manager_core::api::tokens::{RetiredKeyView, RotatedKey};
use connect_manager_core::token::Jwks;

use crate::client::{Client, enc};
use crate::output::{Output, Render, Style};

#[derive(Debug, Subcommand)]
pub enum SigningKeyCommand {
    /// List the published signing keys (the JWKS): the one that signs, and older ones while
    /// they verify a live token.
    #[command(visible_alias = "ls")]
    List,
    /// Make a new signing key: new tokens are signed with it at once. Prints its ID.
    Rotate,
    /// Retire a signing key: it leaves the JWKS and the tokens it signed are revoked. The key
    /// that signs is refused: rotate first.
    Retire {
        /// The key's ID (a JWT header's `kid`).
        kid: String,
    },
}

impl Render for connect_manager_core::token::Jwk {
    const COLUMNS: &'static [&'static str] = &["Kid", "Alg", "Curve", "Use"];

    fn row(&self, _style: &Style) -> Vec<String> {
        vec![
            self.kid.clone(),
            self.alg.clone(),
            self.crv.clone(),
            self.key_use.clone(),
        ]
    }
}

pub async fn run(client: &Client, out: Output, command: SigningKeyCommand) -> anyhow::Result<()> {
    match command {
        SigningKeyCommand::List => {
            let jwks: Jwks = client.get("/.well-known/jwks.json").await?;
            out.list(jwks.keys)
        }
        SigningKeyCommand::Rotate => {
            let key: RotatedKey = client.post("/v1/keys/rotate", &()).await?;
            out.custom(&key, || println!("{}", key.kid))
        }
        SigningKeyCommand::Retire { kid } => {
            let path = format!("/v1/keys/{}/retire", enc(&kid));
            let retired: RetiredKeyView = client.post(&path, &()).await?;
            out.custom(&retired, || {
                println!(
                    "Retired signing key {}; {} live token(s) it signed revoked.",
                    retired.kid, retired.tokens_revoked
                );
            })
        }
    }
}
