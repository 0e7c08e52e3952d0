//! Start-up: data directory, master key, database and migrations, first owner (A1); then serve.

use std::future::Future;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use connect_manager_core::Error;
use connect_manager_core::secret::{MasterKey, api_key_hash, new_api_key};
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

fn load_master_key(config: &Config) -> Result<MasterKey, ConfigError> {
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
    MasterKey::from_text(&text).map_err(|e| ConfigError(format!("master key: {e}")))
}

/// Opens the configured database and runs its migrations.
pub async fn open_store(config: &Config) -> Result<DynStore, StartError> {
    connect_manager_store::open(&config.database_url)
        .await
        .map_err(|e| match e {
            Error::BadRequest { message, .. } => StartError::Config(ConfigError(message)),
            Error::Unavailable { detail } | Error::Internal { detail } => {
                StartError::Other(format!(
                    "cannot open the database {}: {}",
                    connect_manager_store::redact_url(&config.database_url),
                    connect_manager_store::redact_url(&detail)
                ))
            }
            other => StartError::Other(other.to_string()),
        })
}

pub(crate) fn other(e: Error) -> StartError {
    StartError::Other(match e {
        Error::Unavailable { detail } | Error::Internal { detail } => detail,
        e => e.to_string(),
    })
}

/// Opens the database and the master key, and checks that they belong together.
pub async fn open_checked(config: &Config) -> Result<(DynStore, MasterKey), StartError> {
    let store = open_store(config).await?;
    let master_key = load_master_key(config)?;
    let check = master_key.check_value();
    if store
        .init_setting("master_key_check", &check)
        .await
        .map_err(other)?
        != check
    {
        return Err(ConfigError(
            "the master key does not match the one this database was set up with".into(),
        )
        .into());
    }
    Ok((store, master_key))
}

/// Data directory, master key, database, migrations and the first owner.
pub async fn prepare(config: &Config) -> Result<Prepared, StartError> {
    let (store, master_key) = open_checked(config).await?;
    let account_id = store
        .init_setting("account_id", &connect_manager_core::id::new_upper())
        .await
        .map_err(other)?;
    let (key, generated) = match &config.bootstrap_key {
        Some(k) => (k.clone(), false),
        None => (new_api_key(), true),
    };
    match store
        .bootstrap_owner("Owner", "owner@localhost", &api_key_hash(&key))
        .await
        .map_err(other)?
    {
        Bootstrap::Created(owner) if generated => {
            // Shown once, on stderr, never in the log.
            eprintln!(
                "connect-manager: created the first owner (user {}). Its API key, shown once:\n{key}",
                owner.id
            );
        }
        Bootstrap::Created(owner) => tracing::info!(
            user_id = %owner.id,
            "created the first owner with CONNECT_MANAGER_BOOTSTRAP_KEY"
        ),
        Bootstrap::AlreadyDone if !generated => tracing::info!(
            "the database already has users: CONNECT_MANAGER_BOOTSTRAP_KEY is not used"
        ),
        Bootstrap::AlreadyDone => {}
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
    })
}

/// The whole HTTP application over `state`.
pub fn app(state: AppState) -> Router {
    let trusted_proxies = state.trusted_proxies.clone();
    let (router, _) = crate::openapi::split();
    router
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
    let prepared = prepare(&config).await?;
    let store = prepared.store.clone();
    let state = app_state(prepared, &config).await?;
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
    store.close().await;
    tracing::info!("connect-manager stopped");
    Ok(())
}
