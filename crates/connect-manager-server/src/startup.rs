//! Start-up: data directory, master key, database and migrations, first owner (A1); then serve.

use std::future::Future;
use std::io::{IsTerminal, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use connect_manager_core::Error;
use connect_manager_core::model::Actor;
use connect_manager_core::secret::{
    Kdf, MasterKey, MasterKeyText, api_key_hash, ct_eq, is_legacy_check, new_api_key,
};
use connect_manager_core::token::{SealedKey, reseal_legacy_key};
use connect_manager_store::{Bootstrap, DynStore};
use tokio::net::TcpListener;

use crate::cache::{AccessCache, KeyRing};
use crate::config::{Config, ConfigError, MasterKeySource};
use crate::state::AppState;

/// Why the service could not start: a configuration error (exit code 2) or anything else (1).
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{0}")]
    Other(String),
}

impl StartError {
    pub fn exit_code(&self) -> i32 {
        match self {
            StartError::Config(_) => 2,
            StartError::Other(_) => 1,
        }
    }
}

/// The largest request body accepted (413 beyond).
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// How long requests in flight may take to finish after a shutdown signal.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(20);
/// How long one request may take before it is answered 408.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Everything `serve` needs that start-up makes.
pub struct Prepared {
    pub store: DynStore,
    pub master_key: MasterKey,
    pub account_id: String,
}

/// The master key as given, or as read from (or first written to) the key file.
fn load_master_key(config: &Config) -> Result<String, ConfigError> {
    let text = match &config.master_key {
        MasterKeySource::Given(text) => text.clone(),
        MasterKeySource::DataDir => {
            let path = config.data_dir.join("master.key");
            match std::fs::read_to_string(&path) {
                Ok(text) => text,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    let text = MasterKey::generate_text();
                    let mut options = std::fs::OpenOptions::new();
                    options.write(true).create_new(true);
                    #[cfg(unix)]
                    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
                    let mut file = options.open(&path).map_err(|e| {
                        ConfigError(format!("cannot create {}: {e}", path.display()))
                    })?;
                    file.write_all(text.as_bytes())
                        .and_then(|()| file.sync_all())
                        .map_err(|e| {
                            ConfigError(format!("cannot write {}: {e}", path.display()))
                        })?;
                    tracing::info!(path = %path.display(), "created the master key file");
                    text
                }
                Err(e) => {
                    return Err(ConfigError(format!("cannot read {}: {e}", path.display())));
                }
            }
        }
    };
    Ok(text)
}

/// Where the master key's check value and (for a passphrase) its Argon2id salt are kept.
pub const MASTER_KEY_CHECK: &str = "master_key_check";
pub const MASTER_KEY_KDF: &str = "master_key_kdf";

fn mismatch() -> StartError {
    ConfigError("the master key does not match the one this database was set up with".into()).into()
}

async fn derive(text: &MasterKeyText, kdf: Option<Kdf>) -> Result<MasterKey, StartError> {
    let text = text.clone();
    tokio::task::spawn_blocking(move || text.derive(kdf.as_ref()))
        .await
        .map_err(|e| StartError::Other(format!("master key derivation: {e}")))?
        .map_err(other)
}

/// The master key of this database (item 9 of issue 12), checked against the value stored at
/// first start. An installation made before (a check value without a version: the key was one
/// SHA-256 of the text) is opened with the old derivation and upgraded in one transaction: every
/// signing key re-sealed under the new key, bound to its ID and public key, and the new check
/// (and salt) stored. No step from the operator; replicas starting together upgrade once.
async fn open_master_key(store: &DynStore, given: &str) -> Result<MasterKey, StartError> {
    let text = MasterKeyText::parse(given).map_err(|e| ConfigError(format!("master key: {e}")))?;
    for _ in 0..5 {
        let check = store.setting(MASTER_KEY_CHECK).await.map_err(other)?;
        let fresh_kdf = text.needs_kdf().then(Kdf::generate);
        let kdf_setting = fresh_kdf.as_ref().map(Kdf::encode);
        let settings: Vec<(&str, &str)> = kdf_setting
            .iter()
            .map(|k| (MASTER_KEY_KDF, k.as_str()))
            .collect();
        match check {
            Some(check) if !is_legacy_check(&check) => {
                let kdf = match text.needs_kdf() {
                    false => None,
                    true => {
                        let stored = store.setting(MASTER_KEY_KDF).await.map_err(other)?;
                        // No salt: this database was set up with a 32-byte key, not a passphrase.
                        let stored = stored.ok_or_else(mismatch)?;
                        Some(Kdf::parse(&stored).map_err(other)?)
                    }
                };
                let key = derive(&text, kdf).await?;
                return match ct_eq(&key.check_value(), &check) {
                    true => Ok(key),
                    false => Err(mismatch()),
                };
            }
            Some(legacy) => {
                let old = MasterKey::legacy_v1(given).map_err(other)?;
                if !ct_eq(&old.legacy_check_value(), &legacy) {
                    return Err(mismatch());
                }
                let key = derive(&text, fresh_kdf).await?;
                let reseal = |k: &SealedKey| reseal_legacy_key(&old, &key, k);
                if store
                    .replace_master_key_check(Some(&legacy), &key.check_value(), &settings, &reseal)
                    .await
                    .map_err(|e| match e {
                        Error::Internal { detail } => StartError::Other(format!(
                            "refusing to start: upgrading the master key: {detail}"
                        )),
                        e => other(e),
                    })?
                {
                    tracing::info!(
                        passphrase = text.needs_kdf(),
                        "upgraded the master key check and re-sealed the signing keys"
                    );
                    return Ok(key);
                }
            }
            None => {
                let key = derive(&text, fresh_kdf).await?;
                let reseal = |k: &SealedKey| {
                    Err(Error::internal(format!(
                        "refusing to start: signing key {} is stored but the database has no \
                         master key check",
                        k.kid
                    )))
                };
                if store
                    .replace_master_key_check(None, &key.check_value(), &settings, &reseal)
                    .await
                    .map_err(other)?
                {
                    return Ok(key);
                }
            }
        }
        // Another replica set or upgraded the check meanwhile: read it again.
    }
    Err(StartError::Other(
        "the master key check kept changing during start-up".into(),
    ))
}

/// Opens the configured database and runs its migrations.
pub async fn open_store(config: &Config) -> Result<DynStore, StartError> {
    connect_manager_store::open_with(&config.database_url, &config.db_connection)
        .await
        .map_err(|e| match e {
            Error::BadRequest { message, .. } => StartError::Config(ConfigError(message)),
            Error::Unavailable { detail }
            | Error::StorageFull { detail }
            | Error::Internal { detail } => StartError::Other(format!(
                "cannot open the database {}: {}",
                connect_manager_store::redact_url(&config.database_url),
                connect_manager_store::redact_url(&detail)
            )),
            other => StartError::Other(other.to_string()),
        })
}

pub(crate) fn other(e: Error) -> StartError {
    StartError::Other(match e {
        Error::Unavailable { detail }
        | Error::StorageFull { detail }
        | Error::Internal { detail } => detail,
        e => e.to_string(),
    })
}

/// Opens the database and the master key, and checks that they belong together.
pub async fn open_checked(config: &Config) -> Result<(DynStore, MasterKey), StartError> {
    let store = open_store(config).await?;
    let given = load_master_key(config)?;
    let master_key = open_master_key(&store, &given).await?;
    Ok((store, master_key))
}

/// The file the first owner's generated API key is written to, in the data directory.
pub const OWNER_KEY_FILE: &str = "owner.key";

/// A1 without `CONNECT_MANAGER_BOOTSTRAP_KEY`: on an empty database, the first owner gets a
/// random API key, written to `owner.key` (0600) in the data directory, never to the log (which
/// log shippers keep). Only where it is gets printed, and the key itself only when stderr is a
/// terminal. The file is written before the owner is created, so a key that cannot be kept
/// never becomes the only way in.
async fn bootstrap_with_key_file(store: &DynStore, data_dir: &Path) -> Result<(), StartError> {
    if store
        .setting("bootstrapped")
        .await
        .map_err(other)?
        .is_some()
    {
        return Ok(());
    }
    let key = new_api_key();
    let path = data_dir.join(OWNER_KEY_FILE);
    let pending = data_dir.join(format!(".{OWNER_KEY_FILE}.{}", std::process::id()));
    let cannot = |e: &dyn std::fmt::Display| {
        StartError::Config(ConfigError(format!(
            "cannot write the first owner's API key to {}: {e} (make the data directory \
             writable, or set CONNECT_MANAGER_BOOTSTRAP_KEY or _FILE)",
            path.display()
        )))
    };
    crate::config::ensure_data_dir(data_dir).map_err(|e| cannot(&e))?;
    let _ = std::fs::remove_file(&pending);
    write_private(&pending, format!("{key}\n").as_bytes()).map_err(|e| cannot(&e))?;
    let outcome = store
        .bootstrap_owner(
            &bootstrap_owner_name(),
            "owner@localhost",
            &api_key_hash(&key),
        )
        .await;
    match outcome {
        Ok(Bootstrap::Created(owner)) => {
            std::fs::rename(&pending, &path).map_err(|e| cannot(&e))?;
            tracing::info!(user_id = %owner.id, path = %path.display(), "created the first owner; its API key is in the file");
            eprintln!(
                "connect-manager: created the first owner (user {}); its API key is in {} \
                 (mode 0600). Use it to make your own key, then delete this one (see README).",
                owner.id,
                path.display()
            );
            if std::io::stderr().is_terminal() {
                eprintln!("{key}");
            }
            Ok(())
        }
        Ok(Bootstrap::AlreadyDone) => {
            let _ = std::fs::remove_file(&pending);
            Ok(())
        }
        Err(e) => {
            let _ = std::fs::remove_file(&pending);
            Err(other(e))
        }
    }
}

/// Writes a new file readable by its owner only (0600), synced.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// Data directory, master key, database, migrations and the first owner.
pub async fn prepare(config: &Config) -> Result<Prepared, StartError> {
    let (store, master_key) = open_checked(config).await?;
    let account_id = store
        .init_setting("account_id", &connect_manager_core::id::new_upper())
        .await
        .map_err(other)?;
    match &config.bootstrap_key {
        Some(key) => match store
            .bootstrap_owner(
                &bootstrap_owner_name(),
                "owner@localhost",
                &api_key_hash(key),
            )
            .await
            .map_err(other)?
        {
            Bootstrap::Created(owner) => tracing::info!(
                user_id = %owner.id,
                "created the first owner with CONNECT_MANAGER_BOOTSTRAP_KEY"
            ),
            Bootstrap::AlreadyDone => tracing::info!(
                "the database already has users: CONNECT_MANAGER_BOOTSTRAP_KEY is not used"
            ),
        },
        None => bootstrap_with_key_file(&store, &config.data_dir).await?,
    }
    Ok(Prepared {
        store,
        master_key,
        account_id,
    })
}

/// The shared state of the handlers: caches subscribed to the store's changes.
pub async fn app_state(prepared: Prepared, config: &Config) -> Result<AppState, StartError> {
    let keys = Arc::new(
        KeyRing::load(&prepared.store, prepared.master_key)
            .await
            .map_err(other)?,
    );
    let access = Arc::new(AccessCache::default());
    prepared.store.subscribe(access.clone());
    prepared.store.subscribe(keys.clone());
    let auth_limiter = Arc::new(crate::limiter::AuthLimiter::new(
        config.auth_failures_per_minute,
    ));
    prepared.store.subscribe(auth_limiter.clone());
    Ok(AppState {
        store: prepared.store,
        public_url: config.public_url.as_str().into(),
        server_secrets: Default::default(),
        access,
        keys,
        account_id: prepared.account_id.into(),
        auth_limiter,
        trusted_proxies: Arc::new(config.trusted_proxies.clone()),
        metrics: Default::default(),
        console: crate::console::ConsoleSettings::new(config.console_sessions, &config.public_url),
        issuer_keys: Arc::new(crate::exchange::IssuerKeys::new(
            config.allow_insecure_issuers,
        )),
    })
}

/// The whole HTTP application over `state`.
pub fn app(state: AppState) -> Router {
    let trusted_proxies = state.trusted_proxies.clone();
    let (router, _) = crate::openapi::split();
    router
        .merge(crate::console::router())
        .fallback(|| async {
            crate::error::ApiError::for_status(axum::http::StatusCode::NOT_FOUND)
        })
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::metrics::record,
        ))
        .with_state(state)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ))
        .layer(crate::telemetry::trace_layer())
        .layer(axum::middleware::from_fn(
            crate::request_id::request_id_layer,
        ))
        // Outermost: the client is known to the request span, the limiter and the audit trail.
        .layer(axum::middleware::from_fn_with_state(
            trusted_proxies,
            crate::client::layer,
        ))
}

/// Prepares and serves on `listener` until `shutdown` resolves, then finishes in-flight requests
/// and closes the database pool.
pub async fn launch(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StartError> {
    // One process per SQLite database, held until this returns (see data_lock.rs).
    let bind = listener.local_addr().unwrap_or(config.bind);
    let _lock = crate::data_lock::lock_database(&config.database_url, bind)?;
    let prepared = prepare(&config).await?;
    let store = prepared.store.clone();
    let state = app_state(prepared, &config).await?;
    let rotation = config
        .key_rotation_interval
        .map(|interval| spawn_key_rotation(&state, interval));
    tracing::info!(
        addr = %listener.local_addr().map(|a| a.to_string()).unwrap_or_default(),
        backend = store.backend().as_str(),
        "connect-manager listening"
    );
    // On shutdown: stop accepting, let requests in flight finish, but not for longer than
    // SHUTDOWN_GRACE; then close the pool.
    if !crate::serve::serve(listener, app(state), shutdown, SHUTDOWN_GRACE).await {
        tracing::warn!(
            seconds = SHUTDOWN_GRACE.as_secs(),
            "requests still in flight after the shutdown grace period; stopping anyway"
        );
    }
    if let Some(task) = rotation {
        // A rotation in flight is rolled back with its transaction.
        task.abort();
        let _ = task.await;
    }
    store.close().await;
    tracing::info!("connect-manager stopped");
    Ok(())
}

/// How often scheduled rotation compares the newest key's age with the interval (a read; it
/// writes only when a key is due): a key is rotated at most this long after it is due.
pub const KEY_ROTATION_CHECK: Duration = Duration::from_secs(60);

/// Scheduled signing-key rotation (`CONNECT_MANAGER_KEY_ROTATION_INTERVAL`): at start and every
/// [`KEY_ROTATION_CHECK`], a new key when the newest is older than `interval`, made the way
/// `POST /v1/keys/rotate` makes one ([`KeyRing::rotate_if_older`]) and decided under the
/// signing-key lock, so replicas sharing a database make one between them. Old keys are not
/// retired: they stay in the JWKS while they verify a live token, until an owner retires them.
fn spawn_key_rotation(state: &AppState, interval: Duration) -> tokio::task::JoinHandle<()> {
    let store = state.store.clone();
    let keys = state.keys.clone();
    tokio::spawn(async move {
        let actor = Actor::system("key-rotation");
        loop {
            match keys.rotate_if_older(&store, &actor, interval).await {
                Ok(Some(kid)) => {
                    tracing::info!(kid = %kid, "rotated the signing key on schedule");
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "scheduled signing key rotation failed; retrying");
                }
            }
            tokio::time::sleep(KEY_ROTATION_CHECK).await;
        }
    })
}

/// What the first owner is called (A1).
fn bootstrap_owner_name() -> connect_manager_core::name::Name {
    connect_manager_core::name::Name::parse("name", "Owner").expect("a valid name")
}
